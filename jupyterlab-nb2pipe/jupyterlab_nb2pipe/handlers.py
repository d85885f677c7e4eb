"""jupyter_server handlers: POST /nb2pipe/<command> with a JSON body runs that command.

Authentication and authorization are jupyter_server's own (`APIHandler`: token or
cookie plus XSRF; under JupyterHub, only the server's owner or those the hub grants
access). The handlers read notebooks and write bundles inside the server root, so
they are authorized as the `contents` resource.
"""

from __future__ import annotations

import json
import os

import tornado.ioloop
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join

from . import runner


class CommandHandler(APIHandler):
    auth_resource = "contents"

    def initialize(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout

    def _root(self) -> str:
        root = getattr(self.contents_manager, "root_dir", None) or self.settings.get("server_root_dir")
        return os.path.realpath(os.path.expanduser(root or os.getcwd()))

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"ok": False, "error": message}))

    def _action(self) -> str:
        return "write" if runner.COMMANDS[self.command].writes else "read"

    @tornado.web.authenticated
    async def post(self) -> None:
        # The `authorized` decorator needs the action before the call: check it here.
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, self._action(), self.auth_resource)
        )
        if not allowed:
            raise tornado.web.HTTPError(403)
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return self._fail(400, "the request body is not valid JSON")
        allow_hidden = bool(getattr(self.contents_manager, "allow_hidden", True))
        try:
            doc = await self._answer(body, allow_hidden)
        except runner.RequestError as e:
            return self._fail(e.status, e.message)
        self.finish(json.dumps(doc))

    async def _answer(self, body: dict, allow_hidden: bool) -> dict:
        """The command's JSON answer to a request body (RequestError: the client's fault)."""
        req = runner.validate(self.command, self._root(), body, allow_hidden)
        loop = tornado.ioloop.IOLoop.current()
        # The binary takes milliseconds, but never block the server's event loop.
        return await loop.run_in_executor(None, runner.run, self.command, req, self.timeout)

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        # A cheap way for the frontend (and the hub test) to see what is available.
        self.finish(json.dumps({"command": self.command, "options": list(runner.COMMANDS[self.command].options)}))


class InfoHandler(APIHandler):
    auth_resource = "contents"

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        info = {"commands": sorted(runner.COMMANDS), "targets": list(runner.TARGETS)}
        try:
            info["binary"] = runner.find_binary()
        except runner.RequestError as e:
            info["binary"] = None
            info["error"] = e.message
        self.finish(json.dumps(info))


class RunHandler(CommandHandler):
    """POST /nb2pipe/run starts `nb2pipe run`; POST /nb2pipe/runs reports on runs."""

    def _action(self) -> str:
        return "write" if self.command == "run" else "read"

    async def _answer(self, body: dict, allow_hidden: bool) -> dict:
        req = runner.validate_run(self._root(), body, allow_hidden)
        return runner.start_run(req) if self.command == "run" else runner.runs(req)

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(json.dumps({"command": self.command, "options": ["out"]}))


def setup_handlers(web_app, timeout: float = runner.DEFAULT_TIMEOUT) -> None:
    base = url_path_join(web_app.settings["base_url"], "nb2pipe")
    handlers = [(url_path_join(base, "info"), InfoHandler)]
    for name in runner.COMMANDS:
        handlers.append((url_path_join(base, name), CommandHandler, {"command": name, "timeout": timeout}))
    for name in ("run", "runs"):
        handlers.append((url_path_join(base, name), RunHandler, {"command": name, "timeout": timeout}))
    web_app.add_handlers(".*$", handlers)
