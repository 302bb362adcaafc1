#!/usr/bin/env python3
"""End-to-end check of phoenix.auth.v1 with a real, out-of-process grpcio client.

Usage: auth_e2e.py <host:port> <email> <password>

Generates the Python stubs from proto/ at run time (grpcio-tools, into a temporary
directory), logs in, calls WhoAmI with the access token, and checks that WhoAmI without a
token is UNAUTHENTICATED. Prints one `ok ...` line per step; never prints a token or the
password. Exit status: 0 success, 1 a check failed, 2 bad usage or missing packages.
"""

import importlib
import os
import sys
import tempfile

PROTO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
AUTH_PROTO = "phoenix/auth/v1/auth.proto"


def generate_stubs(out_dir):
    """Compiles auth.proto (and the well-known types it imports) into out_dir."""
    from grpc_tools import protoc

    try:
        from importlib.resources import files

        well_known = str(files("grpc_tools") / "_proto")
    except (ImportError, TypeError):  # Python < 3.9
        import pkg_resources

        well_known = pkg_resources.resource_filename("grpc_tools", "_proto")
    args = [
        "grpc_tools.protoc",
        "-I" + os.path.abspath(PROTO_ROOT),
        "-I" + well_known,
        "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir,
        AUTH_PROTO,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed for " + AUTH_PROTO)


def fail(message):
    print("FAIL " + message)
    sys.exit(1)


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    addr, email, password = argv[1], argv[2], argv[3]
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError as e:
        print("missing Python package ({}); pip install grpcio grpcio-tools".format(e), file=sys.stderr)
        return 2
    import grpc

    with tempfile.TemporaryDirectory(prefix="phoenix-py-stubs-") as out_dir:
        generate_stubs(out_dir)
        sys.path.insert(0, out_dir)
        pb = importlib.import_module("phoenix.auth.v1.auth_pb2")
        rpc = importlib.import_module("phoenix.auth.v1.auth_pb2_grpc")
        print("ok stubs generated")

        with grpc.insecure_channel(addr) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            auth = rpc.AuthServiceStub(channel)

            reply = auth.Login(pb.LoginRequest(email=email, password=password), timeout=60)
            tokens = reply.tokens
            if not tokens.access_token or not tokens.refresh_token or tokens.token_type != "Bearer":
                fail("login returned no token pair")
            print("ok login token_type={}".format(tokens.token_type))

            metadata = (("authorization", "Bearer " + tokens.access_token),)
            me = auth.WhoAmI(pb.WhoAmIRequest(), metadata=metadata, timeout=30)
            if me.account.email != email.strip().lower():
                fail("WhoAmI answered for another account (id {})".format(me.account.id))
            print(
                "ok whoami account_id={} roles={} permissions={}".format(
                    me.account.id, ",".join(me.roles), ",".join(me.permissions)
                )
            )

            try:
                auth.WhoAmI(pb.WhoAmIRequest(), timeout=30)
                fail("WhoAmI without a token succeeded")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAUTHENTICATED:
                    fail("WhoAmI without a token answered {}".format(e.code()))
            print("ok anonymous whoami UNAUTHENTICATED")

            try:
                auth.Login(pb.LoginRequest(email=email, password=password + "x"), timeout=60)
                fail("login with a wrong password succeeded")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAUTHENTICATED:
                    fail("wrong password answered {}".format(e.code()))
            print("ok wrong password UNAUTHENTICATED")
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
