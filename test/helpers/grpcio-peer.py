# gRPC's C core (Debian's python3-grpcio) on the other end of the channel: an implementation that
# shares no code with grpc-js. It moves bytes only; the messages are encoded and checked by the
# Node test with our own codec, whose bytes wire.test.ts checks against KEDA's field numbers.
#
#   client <target> <ca> <cert> <key> <authority>
#       reads JSON lines {"method", "request" (hex), "timeout" (s)} on stdin and writes one JSON
#       line per call: {"code", "details", "response" (hex)}.
#   server <ca> <cert> <key> <response hex> [<together>]
#       KEDA's operator as far as the wire goes: /api.MetricsService/GetMetrics only (any other
#       method is UNIMPLEMENTED, as grpc-go answers it). A request whose bytes contain "missing"
#       gets NOT_FOUND; any other gets the given response. With <together>, a request whose bytes
#       contain "held" is answered only once that many such calls are open at the same time
#       (RESOURCE_EXHAUSTED after 10 s without). Like grpc-go, the C core announces no limit of
#       concurrent streams. Prints "listening <port>", then one JSON line per call:
#       {"method", "request" (hex)}.
import json
import sys
import threading
from concurrent import futures

import grpc

GET_METRICS = "/api.MetricsService/GetMetrics"
# The server's handlers run on several threads; print writes a line and its newline separately.
stdout_lock = threading.Lock()


def say(value):
    with stdout_lock:
        print(json.dumps(value), flush=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def client(target, ca, cert, key, authority):
    creds = grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
    options = [("grpc.ssl_target_name_override", authority), ("grpc.default_authority", authority)]
    with grpc.secure_channel(target, creds, options=options) as channel:
        for line in sys.stdin:
            call = json.loads(line)
            stub = channel.unary_unary(call["method"])
            try:
                response = stub(bytes.fromhex(call["request"]), timeout=call.get("timeout", 5))
                out = {"code": "OK", "details": "", "response": response.hex()}
            except grpc.RpcError as err:
                out = {"code": err.code().name, "details": err.details() or "", "response": ""}
            say(out)


class KedaOperator(grpc.GenericRpcHandler):
    def __init__(self, response, together):
        self.response = response
        self.together = threading.Barrier(together, timeout=10) if together else None

    def service(self, details):
        if details.method != GET_METRICS:
            return None
        method = details.method

        def get_metrics(request, context):
            say({"method": method, "request": request.hex()})
            if b"missing" in request:
                context.abort(grpc.StatusCode.NOT_FOUND, "no such metric")
            if self.together and b"held" in request:
                try:
                    self.together.wait()
                except threading.BrokenBarrierError:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"fewer than {self.together.parties} calls open together")
            return self.response

        return grpc.unary_unary_rpc_method_handler(get_metrics)


def server(ca, cert, key, response, together="0"):
    creds = grpc.ssl_server_credentials([(read(key), read(cert))], root_certificates=read(ca), require_client_auth=True)
    # A thread per call held open, and some to spare.
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=int(together) + 4), handlers=[KedaOperator(bytes.fromhex(response), int(together))])
    port = srv.add_secure_port("127.0.0.1:0", creds)
    srv.start()
    print(f"listening {port}", flush=True)
    srv.wait_for_termination()


if __name__ == "__main__":
    {"client": client, "server": server}[sys.argv[1]](*sys.argv[2:])
