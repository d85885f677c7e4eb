"""JupyterLab button for nb2pipe: server handlers, the lab extension, an nbconvert exporter."""

__version__ = "0.1.0"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyterlab-nb2pipe"}]


def _jupyter_server_extension_points():
    return [{"module": "jupyterlab_nb2pipe"}]


def _load_jupyter_server_extension(server_app):
    from .handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("jupyterlab_nb2pipe: /nb2pipe/{info,inspect,convert,build} registered")
