"""Plain Kubernetes objects (k8s/*.yaml): kubernetes-validate in strict mode against
the Kubernetes version nb2pipe's k8s-openapi types target."""
import sys

import kubernetes_validate

from common import Report, load_docs

VERSION = "1.33.0"


def main(paths):
    r = Report()
    for path in paths:
        bad = False
        for doc in load_docs(path):
            try:
                kubernetes_validate.validate(doc, VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                r.add(path, "%s: %s" % (doc.get("kind"), e.message))
                bad = True
            except Exception as e:  # unknown kind/version
                r.add(path, "%s: %s" % (doc.get("kind"), e))
                bad = True
        if not bad:
            print("ok", path)
    r.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
