//! Schedules: what nb2pipe accepts (`--schedule`, `schedule =`), checked with a real cron
//! parser, and what each engine's own cron dialect takes of it (docs/settings.md).
//!
//! nb2pipe's grammar: a preset (`@once`, `@continuous`, `@hourly`, `@daily`, ...), or a
//! 5-field cron expression, optionally after `TZ=<IANA zone> ` (or `CRON_TZ=`). Values,
//! steps and ranges are checked by croner, and the expression must fire at least once.
//! The engines then differ:
//!
//! - Airflow (croniter): its presets, `L`/`nW` in day of month, `n#k` in day of week; a
//!   zone becomes the DAG's start_date zone.
//! - Kubernetes CronJob and Argo CronWorkflow (Go's robfig/cron standard parser): plain
//!   5 fields, names, no `L`/`W`/`#`, day of week 0-6; a zone goes in `spec.timeZone` /
//!   `spec.timezone` (the API server refuses `TZ=` inside a CronJob's schedule);
//!   `@continuous` has no equivalent.
//! - Tekton has no schedules (Triggers or a CronJob create runs); KFP's recurring runs
//!   are made through its API with a 6-field cron (seconds first).

use std::fmt;

use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `@once`: one run, no schedule.
    Once,
    /// `@continuous`: a new run as soon as the last one ends (Airflow only).
    Continuous,
    Cron(Cron),
}

/// A recurring schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The preset it was written as (`@daily`), if any.
    pub preset: Option<&'static str>,
    /// Five fields, presets expanded, single spaces.
    pub expr: String,
    /// IANA zone of `TZ=`/`CRON_TZ=`; `None`: UTC.
    pub zone: Option<String>,
}

/// A schedule as one engine writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSchedule {
    pub schedule: String,
    /// The zone for the engine's own time-zone field (`None`: UTC).
    pub zone: Option<String>,
}

/// An engine that cannot run a schedule nb2pipe accepts, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Presets and the 5 fields they stand for; `@once`/`@continuous` are not cron.
const PRESETS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@quarterly", "0 0 1 */3 *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// Airflow's own presets; other spellings are written out as 5 fields.
const AIRFLOW_PRESETS: &[&str] = &[
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
];

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Schedule {
    /// Parses a schedule as written by a user; `Err` is the message for a diagnostic.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let shown = text.escape_debug();
        let msg = |why: &str| format!("schedule `{shown}` {why}");
        let bad = |why: &str| Err(msg(why));
        if text.len() > 200 {
            return bad("is longer than 200 characters");
        }
        if text.chars().any(|c| c.is_control() && c != ' ') {
            return bad("contains a control character");
        }
        let s = text.trim();
        match s {
            "@once" => return Ok(Schedule::Once),
            "@continuous" => return Ok(Schedule::Continuous),
            _ => {}
        }
        if let Some(&(preset, expr)) = PRESETS.iter().find(|(p, _)| *p == s) {
            return Ok(Schedule::Cron(Cron {
                preset: Some(preset),
                expr: expr.into(),
                zone: None,
            }));
        }
        let (zone, rest) = match split_zone(s) {
            Some((z, rest)) => (Some(z), rest),
            None => (None, s),
        };
        if let Some(z) = zone {
            // The bundled database, not the machine's: the same answer everywhere.
            if jiff::tz::TimeZoneDatabase::bundled().get(z).is_err() {
                return bad(&format!(
                    "names an unknown time zone `{}`",
                    z.escape_debug()
                ));
            }
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if zone.is_some() && rest.starts_with('@') {
            return bad("has a zone before a preset: write the preset as 5 fields (`@daily` is `0 0 * * *`)");
        }
        if rest.starts_with('@') {
            let presets: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            return bad(&format!(
                "is not a preset: @once, @continuous, {}",
                presets.join(", ")
            ));
        }
        if fields.len() != 5 {
            return bad(&format!(
                "has {} field(s): a cron expression has 5 (minute hour day-of-month month day-of-week), or use a preset like @daily",
                fields.len()
            ));
        }
        if fields[4].starts_with('+') || rest.contains(['@', '%']) {
            return bad("is not a cron expression");
        }
        let expr = fields.join(" ");
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(&expr)
            .map_err(|e| msg(&format!("is not a valid cron expression: {e}")))?;
        // From a fixed instant, so the answer does not depend on the day it is asked.
        let from = jiff::civil::date(2024, 1, 1).at(0, 0, 0, 0);
        if cron.find_next_occurrence(&from, true).is_err() {
            return bad("never fires (a day that no month has?)");
        }
        Ok(Schedule::Cron(Cron {
            preset: None,
            expr,
            zone: zone.map(str::to_string),
        }))
    }

    /// Airflow's `schedule=` (a preset or cron croniter reads) and the DAG's zone.
    pub fn airflow(&self) -> Result<EngineSchedule, Refused> {
        let c = match self {
            Schedule::Once => return Ok(plain("@once")),
            Schedule::Continuous => return Ok(plain("@continuous")),
            Schedule::Cron(c) => c,
        };
        if let Some(p) = c.preset.filter(|p| AIRFLOW_PRESETS.contains(p)) {
            return Ok(plain(p));
        }
        for (i, f) in c.expr.split(' ').enumerate() {
            let up = f.to_ascii_uppercase();
            for part in up.split(',') {
                let refuse = |what: &str| {
                    Err(Refused(format!(
                        "schedule `{}`: Airflow's cron parser (croniter) {what}",
                        c.expr
                    )))
                };
                match i {
                    2 if part.contains('L') && part != "L" => {
                        return refuse("takes `L` alone in the day of month");
                    }
                    4 if part.ends_with('L') && part.len() > 1 && !is_name(part) => {
                        return refuse("writes the last weekday of a month as `L5`, not `5L`");
                    }
                    _ => {}
                }
            }
        }
        Ok(EngineSchedule {
            schedule: c.expr.clone(),
            zone: c.zone.clone(),
        })
    }

    /// A Kubernetes CronJob's `spec.schedule` and `spec.timeZone`; `None` for `@once`
    /// (a Job, not a CronJob).
    pub fn cron_job(&self) -> Result<Option<EngineSchedule>, Refused> {
        self.robfig("Kubernetes CronJob")
    }

    /// An Argo CronWorkflow's `spec.schedules` entry and `spec.timezone`; `None` for
    /// `@once` (a Workflow).
    pub fn argo(&self) -> Result<Option<EngineSchedule>, Refused> {
        self.robfig("Argo CronWorkflow")
    }

    /// The 6-field cron (seconds first) of a KFP recurring run; `None` for `@once`.
    pub fn kfp(&self) -> Result<Option<EngineSchedule>, Refused> {
        match self.robfig("KFP recurring run")? {
            Some(e) => Ok(Some(EngineSchedule {
                schedule: format!("0 {}", e.schedule),
                zone: e.zone,
            })),
            None => Ok(None),
        }
    }

    /// Go's robfig/cron standard parser, which Kubernetes, Argo and KFP use.
    fn robfig(&self, engine: &str) -> Result<Option<EngineSchedule>, Refused> {
        let c = match self {
            Schedule::Once => return Ok(None),
            Schedule::Continuous => {
                return Err(Refused(format!(
                    "schedule `@continuous`: a {engine} has no continuous schedule (Airflow only)"
                )))
            }
            Schedule::Cron(c) => c,
        };
        for (i, f) in c.expr.split(' ').enumerate() {
            let up = f.to_ascii_uppercase();
            for atom in up.split([',', '-', '/']) {
                let ok = atom == "*"
                    || atom == "?"
                    || (i == 3 && MONTHS.contains(&atom))
                    || (i == 4 && WEEKDAYS.contains(&atom))
                    || atom.parse::<u8>().is_ok_and(|n| i != 4 || n <= 6);
                if !ok {
                    let what = if atom.parse::<u8>().is_ok() {
                        "takes days of week 0-6 (Sunday is 0, not 7)".to_string()
                    } else {
                        format!("has no `{atom}` (no `L`, `W` or `#`)")
                    };
                    return Err(Refused(format!(
                        "schedule `{}`: the {engine} cron parser {what}",
                        c.expr
                    )));
                }
            }
        }
        Ok(Some(EngineSchedule {
            schedule: c.expr.clone(),
            zone: c.zone.clone(),
        }))
    }
}

fn plain(s: &str) -> EngineSchedule {
    EngineSchedule {
        schedule: s.into(),
        zone: None,
    }
}

fn is_name(s: &str) -> bool {
    WEEKDAYS.contains(&s) || MONTHS.contains(&s)
}

/// `TZ=Europe/Paris 0 5 * * *` → (`Europe/Paris`, `0 5 * * *`).
fn split_zone(s: &str) -> Option<(&str, &str)> {
    let rest = s
        .strip_prefix("CRON_TZ=")
        .or_else(|| s.strip_prefix("TZ="))?;
    let (zone, cron) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((zone, cron.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> Cron {
        match Schedule::parse(s).unwrap() {
            Schedule::Cron(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_out_of_range_are_refused() {
        for s in [
            "99 99 * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "* * * *",
            "* * * * * *",
            "0 0 30 2 *",
            "@every 5m",
            "@fortnightly",
            "TZ=Mars/Olympus 0 5 * * *",
            "TZ=Europe/Paris",
            "0 0 * * +1",
            "",
            "0 0 * * *\n",
        ] {
            let e = Schedule::parse(s).unwrap_err();
            assert!(e.starts_with("schedule `"), "{s:?}: {e}");
        }
    }

    #[test]
    fn presets_and_plain_cron_parse() {
        assert_eq!(Schedule::parse("@once").unwrap(), Schedule::Once);
        assert_eq!(
            Schedule::parse("@continuous").unwrap(),
            Schedule::Continuous
        );
        assert_eq!(cron("@quarterly").expr, "0 0 1 */3 *");
        assert_eq!(cron("@midnight").preset, Some("@midnight"));
        let c = cron(" 0  5 * * MON-FRI ");
        assert_eq!(c.expr, "0 5 * * MON-FRI");
        assert_eq!(c.zone, None);
        let c = cron("TZ=Europe/Paris 30 6 1,15 * *");
        assert_eq!(c.zone.as_deref(), Some("Europe/Paris"));
        assert_eq!(c.expr, "30 6 1,15 * *");
        assert_eq!(
            cron("CRON_TZ=America/New_York 0 0 * * 0").zone.as_deref(),
            Some("America/New_York")
        );
        assert_eq!(cron("0 0 29 2 *").expr, "0 0 29 2 *");
    }

    #[test]
    fn airflow_dialect() {
        let af = |s: &str| Schedule::parse(s).unwrap().airflow();
        assert_eq!(af("@once").unwrap().schedule, "@once");
        assert_eq!(af("@continuous").unwrap().schedule, "@continuous");
        assert_eq!(af("@quarterly").unwrap().schedule, "@quarterly");
        // croniter reads @midnight, but Airflow's own table has no such preset.
        assert_eq!(af("@midnight").unwrap().schedule, "0 0 * * *");
        assert_eq!(af("0 0 L * *").unwrap().schedule, "0 0 L * *");
        assert_eq!(af("0 0 15W * *").unwrap().schedule, "0 0 15W * *");
        assert_eq!(af("0 0 * * 5#3").unwrap().schedule, "0 0 * * 5#3");
        assert_eq!(af("0 0 * * 7").unwrap().schedule, "0 0 * * 7");
        let z = af("TZ=Asia/Tokyo 0 9 * * *").unwrap();
        assert_eq!(
            (z.schedule.as_str(), z.zone.as_deref()),
            ("0 9 * * *", Some("Asia/Tokyo"))
        );
        assert!(af("0 0 * * 5L").unwrap_err().0.contains("`L5`"));
    }

    #[test]
    fn kubernetes_and_argo_dialect() {
        for f in [Schedule::cron_job, Schedule::argo] {
            let k = |s: &str| f(&Schedule::parse(s).unwrap());
            assert_eq!(k("@once").unwrap(), None);
            assert_eq!(k("@daily").unwrap().unwrap().schedule, "0 0 * * *");
            assert_eq!(k("@quarterly").unwrap().unwrap().schedule, "0 0 1 */3 *");
            let z = k("TZ=Europe/Paris 0 5 * JAN-MAR mon").unwrap().unwrap();
            assert_eq!(z.schedule, "0 5 * JAN-MAR mon");
            assert_eq!(z.zone.as_deref(), Some("Europe/Paris"));
            assert_eq!(
                k("*/15 0-6/2 1,15 * ?").unwrap().unwrap().schedule,
                "*/15 0-6/2 1,15 * ?"
            );
            for s in ["0 0 L * *", "0 0 15W * *", "0 0 * * 5#3", "0 0 * * 5L"] {
                assert!(k(s).unwrap_err().0.contains("no `L`, `W` or `#`"), "{s}");
            }
            assert!(k("0 0 * * 7").unwrap_err().0.contains("0-6"));
            assert!(k("0 0 * * 1-7").unwrap_err().0.contains("0-6"));
            assert!(k("@continuous").unwrap_err().0.contains("Airflow only"));
        }
    }

    #[test]
    fn kfp_takes_seconds_first() {
        let k = Schedule::parse("@hourly").unwrap().kfp().unwrap().unwrap();
        assert_eq!(k.schedule, "0 0 * * * *");
        assert_eq!(Schedule::parse("@once").unwrap().kfp().unwrap(), None);
    }
}
