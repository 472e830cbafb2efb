"""The lab's HTTP server: an accept that finds no connection does not block its loop (and its stop)."""

from __future__ import annotations

import threading
import urllib.request

from wizard.lab.serving import LabHandler, LabHttpServer


class Hello(LabHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.answer(200, "hello")


def test_an_accept_with_no_connection_waiting_returns_and_the_server_still_stops() -> None:
    server = LabHttpServer(0, Hello, label="test-lab-serving", owner=None)
    try:
        # What serve_forever does when select() said "readable" but the connection is gone by the
        # time it accepts (a client that reset it): with a blocking socket this waits for the next
        # client, and shutdown() waits with it.
        attempt = threading.Thread(target=server._handle_request_noblock, daemon=True)
        attempt.start()
        attempt.join(timeout=2)
        if attempt.is_alive():
            server.server_close()
            raise AssertionError("accept() blocked with no connection waiting")

        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5) as answer:
            assert answer.status == 200 and answer.read() == b"hello"  # connections are served as before
    finally:
        if server.listening and server.socket.fileno() >= 0:
            server.close_all()  # returns: serve_forever was looping, not stuck in accept()
