"""How a lab node serves: HTTP/1.1 on the standard library's server, WebSockets on ``websockets``.

The HTTP side is ``http.server``'s ``ThreadingHTTPServer`` (keep-alive, ``Host``, request
bodies and ``HEAD`` as the standard library parses them), because what stands in front of
a node is a real Apache that reuses its backend connections and because the General
Configuration form is a POST: ``websockets``' own server answers plain HTTP only for GET
requests without a body. Once a request asks for a WebSocket, the connection is handed to
``websockets``' Sans-I/O ``ServerProtocol``, which does the handshake, the frames, pings
and the closing handshake; this module only moves bytes between it and the socket.

``LabHttpServer`` tracks its connections so ``close_all`` can end them all, WebSockets
included (``shutdown`` alone only stops accepting), and join their threads; or all but the
open WebSockets, which then go on until a later ``close_all``.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

#: How much a WebSocket reads from its socket at a time.
RECEIVE_BYTES = 65536


class LabHttpServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 that can close every open connection when it stops.

    ``owner`` is what the handlers serve (a ``LabNode``); ``label`` names the threads.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    #: False once ``close_all`` closed the port (the server object may still hold WebSockets).
    listening = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], *, label: str, owner: Any) -> None:
        self.label = label
        self.owner = owner
        self._connections: dict[threading.Thread, socket.socket] = {}
        #: The connection threads that went on as a WebSocket (``serve_websocket``).
        self._websockets: set[threading.Thread] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), handler)

    def server_activate(self) -> None:
        super().server_activate()
        # serve_forever accepts only once select() says a connection is waiting; were it gone by then
        # (its client reset it), a blocking accept() would wait for the next client, and shutdown()
        # (which waits for serve_forever) with it: the lab's stop hung so. Non-blocking, that accept
        # raises, serve_forever shrugs it off and looks again.
        self.socket.setblocking(False)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        connection.setblocking(True)  # the handlers read and write it with their own timeouts
        return connection, address

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the address's name; on loopback that is
        # only a delay (seconds on a machine with a slow resolver).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name=f"{self.label}-connection", daemon=True)
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # the client hung up, or close_all shut the socket: nothing to report
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)
                self._websockets.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a lab client that disconnects mid-answer is not worth a traceback on the admin's screen."""

    def became_websocket(self) -> None:
        """Note that the calling connection thread serves a WebSocket from now on."""
        with self._connections_lock:
            self._websockets.add(threading.current_thread())

    @property
    def open_websockets(self) -> int:
        """How many WebSockets are open."""
        with self._connections_lock:
            return len(self._websockets)

    def close_all(self, *, except_websockets: bool = False) -> None:
        """Stop accepting, close every open connection and join its thread.

        ``except_websockets``: the open WebSockets are left open (a later ``close_all``
        ends them); the port itself is closed all the same.
        """
        if self.listening:
            self.listening = False
            self.shutdown()
            self.server_close()
        with self._connections_lock:
            open_connections = [(thread, sock) for thread, sock in self._connections.items()
                                if not (except_websockets and thread in self._websockets)]
        for _, sock in open_connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in open_connections:
            thread.join(timeout=5)


class LabHandler(BaseHTTPRequestHandler):
    """What every lab service shares: quiet logs, Tomcat's server name, answers with extra headers."""

    server: LabHttpServer
    protocol_version = "HTTP/1.1"
    #: An idle keep-alive connection is closed after this long (a WebSocket has no timeout).
    timeout = 60
    server_version = "Apache-Coyote/1.1"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # the wizard's screen is no place for an access log

    def answer(self, status: int, body: bytes | str = b"", content_type: str = "text/plain;charset=UTF-8",
               headers: dict[str, str] | None = None) -> None:
        """One whole answer with ``Content-Length`` (no body for HEAD), the connection kept open."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def path_only(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0]

    def wants_websocket(self) -> bool:
        return self.headers.get("Upgrade", "").lower() == "websocket"

    def serve_websocket(self, reply: Any, headers: dict[str, str] | None = None) -> bool:
        """Accept this WebSocket upgrade with ``websockets`` and answer every message with
        ``reply(text)`` until the client closes or hangs up. False when the handshake was
        refused (``websockets`` sent the reason, e.g. no Sec-WebSocket-Key).

        The connection is the WebSocket's from here: no other request is read from it.
        """
        self.close_connection = True
        protocol = ServerProtocol()
        # The request again as it came (http.server has read it): the protocol parses it
        # itself, and then expects frames.
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        protocol.receive_data(f"{self.requestline}\r\n{head}\r\n".encode("iso-8859-1"))
        requests = [event for event in protocol.events_received() if isinstance(event, Request)]
        if requests:
            response = protocol.accept(requests[0])
        else:  # websockets could not parse it: it says why, as a 400
            response = protocol.reject(400, f"Failed to open a WebSocket connection: {protocol.handshake_exc}.\n")
        for name, value in (headers or {}).items():
            response.headers[name] = value
        protocol.send_response(response)
        self.wfile.flush()  # anything http.server buffered goes before the handshake answer
        sock = self.connection
        _send_pending(protocol, sock)
        if protocol.state is not State.OPEN:
            return False
        self.server.became_websocket()
        sock.settimeout(None)  # an editor's WebSocket may idle; close_all ends it
        message: list[bytes] = []
        while not protocol.close_expected():
            data = sock.recv(RECEIVE_BYTES)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                text = _message_text(event, message) if isinstance(event, Frame) else None
                if text is not None:
                    protocol.send_text(reply(text).encode("utf-8"))
            _send_pending(protocol, sock)
            if not data:
                break
        return True


def _message_text(frame: Frame, parts: list[bytes]) -> str | None:
    """The text of a whole message once its last frame is in (``parts`` holds the earlier ones), else None.

    Pings, pongs and the close frame are answered by ``websockets`` itself.
    """
    if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
        if frame.opcode is not Opcode.CONT:
            parts.clear()
        parts.append(bytes(frame.data))
        if frame.fin:
            text = b"".join(parts).decode("utf-8", "replace")
            parts.clear()
            return text
    return None


def _send_pending(protocol: ServerProtocol, sock: socket.socket) -> None:
    """Write what ``websockets`` has to send; an empty chunk means: half-close the connection."""
    for chunk in protocol.data_to_send():
        if chunk:
            sock.sendall(chunk)
        else:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
