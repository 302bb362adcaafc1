#!/usr/bin/env python3
"""End to end through the gateway with a Python grpcio client: a parent accepts a guardian
invitation, signs in, sees exactly their own child, watches the child move between rooms on
the live stream, and cannot see another child by id (docs/access.md).

Every call goes to the gateway (one address), as a parent's app would. The office (an admin,
signed in with its own account) moves the pupils. Stubs are generated from the repository's
proto/ at run time (grpcio-tools), so the test speaks the current contract. Usage:

    guardian_e2e.py --gateway HOST:PORT --admin-email E --admin-password P
                    --invitation-token T --child ID --other ID --session-a ID --session-b ID
"""

import argparse
import importlib
import os
import pathlib
import queue
import sys
import tempfile
import threading

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOS = [
    "phoenix/auth/v1/auth.proto",
    "phoenix/users/v1/users.proto",
    "phoenix/users/v1/family.proto",
    "phoenix/active/v1/active.proto",
    "phoenix/active/v1/presence.proto",
]
PARENT_PASSWORD = "Eltern-Pass7!"
TIMEOUT = 20


def generate(out: str) -> None:
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + PROTOS) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)


def expect_code(call, code):
    try:
        call()
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
        return e
    raise AssertionError(f"expected {code}, got success")


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("gateway", "admin-email", "admin-password", "invitation-token"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("child", "other", "session-a", "session-b"):
        parser.add_argument(f"--{name}", required=True, type=int)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        generate(out)
        auth_pb2 = importlib.import_module("phoenix.auth.v1.auth_pb2")
        auth_grpc = importlib.import_module("phoenix.auth.v1.auth_pb2_grpc")
        users_pb2 = importlib.import_module("phoenix.users.v1.users_pb2")
        users_grpc = importlib.import_module("phoenix.users.v1.users_pb2_grpc")
        family_pb2 = importlib.import_module("phoenix.users.v1.family_pb2")
        family_grpc = importlib.import_module("phoenix.users.v1.family_pb2_grpc")
        active_pb2 = importlib.import_module("phoenix.active.v1.active_pb2")
        active_grpc = importlib.import_module("phoenix.active.v1.active_pb2_grpc")
        presence_pb2 = importlib.import_module("phoenix.active.v1.presence_pb2")
        presence_grpc = importlib.import_module("phoenix.active.v1.presence_pb2_grpc")

        channel = grpc.insecure_channel(args.gateway)
        auth = auth_grpc.AuthServiceStub(channel)
        invitations = auth_grpc.InvitationServiceStub(channel)
        users = users_grpc.UsersServiceStub(channel)
        family = family_grpc.FamilyServiceStub(channel)
        active = active_grpc.ActiveServiceStub(channel)
        presence = presence_grpc.PresenceServiceStub(channel)

        def login(email, password):
            tokens = auth.Login(auth_pb2.LoginRequest(email=email, password=password), timeout=TIMEOUT).tokens
            return [("authorization", f"Bearer {tokens.access_token}")]

        # The parent: the invitation from the office's email, accepted with a password.
        offer = invitations.LookupGuardianInvitation(
            auth_pb2.LookupGuardianInvitationRequest(token=args.invitation_token), timeout=TIMEOUT
        )
        accepted = invitations.AcceptGuardianInvitation(
            auth_pb2.AcceptGuardianInvitationRequest(token=args.invitation_token, password=PARENT_PASSWORD),
            timeout=TIMEOUT,
        )
        assert accepted.account_id > 0, accepted
        parent = login(offer.email, PARENT_PASSWORD)
        me = auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=parent, timeout=TIMEOUT)
        assert list(me.roles) == ["guardian"], me.roles
        print(f"ok parent signed in roles={','.join(me.roles)}")

        children = family.ListMyChildren(family_pb2.ListMyChildrenRequest(), metadata=parent, timeout=TIMEOUT).children
        assert [c.student_id for c in children] == [args.child], children
        print(f"ok my children={[c.student_id for c in children]}")

        # The live stream, from the board's cursor: nothing between board and stream is lost.
        board = presence.GetPresenceBoard(presence_pb2.GetPresenceBoardRequest(), metadata=parent, timeout=TIMEOUT)
        assert not board.HasField("counts"), "the family view has no school-wide counts"
        stream = presence.WatchPresence(presence_pb2.WatchPresenceRequest(cursor=board.cursor), metadata=parent)
        events = queue.Queue()

        def pump():
            try:
                for message in stream:
                    events.put(message.event)
            except grpc.RpcError as e:
                events.put(e)

        threading.Thread(target=pump, daemon=True).start()

        # The office moves the pupils: the child into room A, the other child into room A,
        # then the child on to room B.
        office = login(args.admin_email, args.admin_password)

        def check_in(student, session, transfer=False):
            active.CheckInStudent(
                active_pb2.CheckInStudentRequest(student_id=student, session_id=session, transfer=transfer),
                metadata=office,
                timeout=TIMEOUT,
            )

        check_in(args.child, args.session_a)
        check_in(args.other, args.session_a)
        check_in(args.child, args.session_b, transfer=True)

        kinds = presence_pb2.PresenceEventKind
        pupil_kinds = {kinds.Value(k) for k in ("PRESENCE_EVENT_KIND_CHECKED_IN", "PRESENCE_EVENT_KIND_TRANSFERRED")}
        seen = []
        while len(seen) < 2:
            event = events.get(timeout=TIMEOUT)
            if isinstance(event, grpc.RpcError):
                raise AssertionError(f"stream ended: {event.code()} {event.details()}")
            if event.kind not in pupil_kinds:
                continue
            assert event.pupil.student_id == args.child, f"an event about another pupil reached the parent: {event}"
            assert not event.HasField("counts"), "the family view has no counts"
            seen.append(event)
        moved_in, moved_on = seen
        assert moved_in.kind == kinds.Value("PRESENCE_EVENT_KIND_CHECKED_IN"), moved_in
        assert moved_on.kind == kinds.Value("PRESENCE_EVENT_KIND_TRANSFERRED"), moved_on
        assert moved_on.from_room_id == moved_in.room_id and moved_on.room_id != moved_in.room_id, moved_on
        print(f"ok stream {moved_in.room_name} -> {moved_on.room_name}")
        stream.cancel()

        now = family.GetChildPresence(
            family_pb2.GetChildPresenceRequest(student_id=args.child), metadata=parent, timeout=TIMEOUT
        ).presence
        assert now.state == family_pb2.CHILD_PRESENCE_STATE_IN_ROOM, now
        assert now.room_name == moved_on.room_name and len(now.today_visits) == 2, now
        print(f"ok child presence room={now.room_name}")

        # Another child, by id: as if it did not exist; the staff API is closed by permission.
        expect_code(
            lambda: family.GetChildPresence(
                family_pb2.GetChildPresenceRequest(student_id=args.other), metadata=parent, timeout=TIMEOUT
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        expect_code(
            lambda: family.GetChildConsent(
                family_pb2.GetChildConsentRequest(student_id=args.other), metadata=parent, timeout=TIMEOUT
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        print("ok other child NOT_FOUND")
        for student in (args.other, args.child):
            expect_code(
                lambda: users.GetStudent(users_pb2.GetStudentRequest(id=student), metadata=parent, timeout=TIMEOUT),
                grpc.StatusCode.PERMISSION_DENIED,
            )
        print("ok GetStudent PERMISSION_DENIED")
        print("guardian end to end: ok")


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
