//! Which image a task runs in: always one nb2pipe builds, `FROM` the `image:` setting
//! when there is one, else from the pipeline's base image. The reference and its hash
//! are made once the task's files are known (`plan::files::task_image`).

use crate::plan::Image;

/// The task's image before its content is known: only its base.
pub(super) fn task_image(named: Option<&String>) -> Image {
    Image {
        reference: String::new(),
        prebuilt: false,
        base: named.cloned(),
        content_hash: None,
    }
}
