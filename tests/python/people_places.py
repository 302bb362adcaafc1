#!/usr/bin/env python3
"""End to end with a Python grpcio client: a room, a teacher, a group and a pupil with an
RFID card, then the GDPR redaction of that pupil for another staff member. Every call carries
a real access token: the script logs in as the admin, creates two staff accounts through the
auth service, links them to the staff records and logs in as each of them.

Stubs are generated from the repository's proto/ at run time (grpcio-tools), so the test
always speaks the current contract. Usage:

    people_places.py --auth HOST:PORT --users HOST:PORT --education HOST:PORT --facilities HOST:PORT
                     --email ADMIN_EMAIL --password ADMIN_PASSWORD
"""

import argparse
import importlib
import os
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOS = [
    "phoenix/auth/v1/auth.proto",
    "phoenix/users/v1/users.proto",
    "phoenix/education/v1/education.proto",
    "phoenix/facilities/v1/facilities.proto",
]


def generate(out: str) -> None:
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + PROTOS) != 0:
        sys.exit("protoc failed")
    # Packages need no __init__.py (namespace packages); the generated code imports
    # `phoenix.users.v1.users_pb2` relative to `out`.
    sys.path.insert(0, out)


def expect_code(call, code):
    try:
        call()
    except grpc.RpcError as e:  # noqa: PERF203
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
        return e
    raise AssertionError(f"expected {code}, got success")


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("auth", "users", "education", "facilities", "email", "password"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        generate(out)
        users_pb2 = importlib.import_module("phoenix.users.v1.users_pb2")
        users_grpc = importlib.import_module("phoenix.users.v1.users_pb2_grpc")
        edu_pb2 = importlib.import_module("phoenix.education.v1.education_pb2")
        edu_grpc = importlib.import_module("phoenix.education.v1.education_pb2_grpc")
        fac_pb2 = importlib.import_module("phoenix.facilities.v1.facilities_pb2")
        fac_grpc = importlib.import_module("phoenix.facilities.v1.facilities_pb2_grpc")

        auth_pb2 = importlib.import_module("phoenix.auth.v1.auth_pb2")
        auth_grpc = importlib.import_module("phoenix.auth.v1.auth_pb2_grpc")
        auth = auth_grpc.AuthServiceStub(grpc.insecure_channel(args.auth))
        accounts = auth_grpc.AccountServiceStub(grpc.insecure_channel(args.auth))

        def login(email, password):
            tokens = auth.Login(auth_pb2.LoginRequest(email=email, password=password)).tokens
            return [("authorization", f"Bearer {tokens.access_token}")]

        admin = login(args.email, args.password)

        class As:
            """A stub whose every call carries `metadata` (one caller's token)."""

            def __init__(self, stub, metadata):
                self._stub, self._metadata = stub, metadata

            def __getattr__(self, name):
                method = getattr(self._stub, name)
                return lambda request, **kw: method(request, metadata=self._metadata, **kw)

        users_stub = users_grpc.UsersServiceStub(grpc.insecure_channel(args.users))
        users = As(users_stub, admin)
        edu = As(edu_grpc.EducationServiceStub(grpc.insecure_channel(args.education)), admin)
        fac = As(fac_grpc.FacilitiesServiceStub(grpc.insecure_channel(args.facilities)), admin)
        expect_code(
            lambda: users_stub.ListStudents(users_pb2.ListStudentsRequest()),
            grpc.StatusCode.UNAUTHENTICATED,
        )

        room = fac.CreateRoom(
            fac_pb2.CreateRoomRequest(room=fac_pb2.Room(name="Raum 101", capacity=25, color="4f86c6"))
        ).room
        assert room.id > 0 and room.color == "#4F86C6", room
        assert not room.HasField("location_id"), "unset optional fields stay absent"

        teacher = users.CreateStaff(
            users_pb2.CreateStaffRequest(staff=users_pb2.Staff(first_name="Tina", last_name="Team", is_teacher=True))
        ).staff
        other = users.CreateStaff(
            users_pb2.CreateStaffRequest(staff=users_pb2.Staff(first_name="Olga", last_name="Team", is_teacher=True))
        ).staff

        group = edu.CreateGroup(
            edu_pb2.CreateGroupRequest(
                group=edu_pb2.Group(name="Füchse", room_id=room.id, teacher_ids=[teacher.teacher_id])
            )
        ).group
        assert group.room_name == "Raum 101" and list(group.teacher_ids) == [teacher.teacher_id], group

        pupil = users.CreateStudent(
            users_pb2.CreateStudentRequest(
                student=users_pb2.Student(
                    first_name="Mia",
                    last_name="Muster",
                    school_class="2a",
                    group_id=group.id,
                    birthday="2017-05-01",
                    health_info="Asthma",
                    tag_id="04:a1:b2:c3:d4",
                )
            )
        ).student
        assert pupil.tag_id == "04A1B2C3D4", pupil.tag_id
        card = users.GetRfidCard(users_pb2.GetRfidCardRequest(tag_id="04a1b2c3d4")).card
        assert card.person_id == pupil.person_id, card

        def staff_login(member, email):
            """A staff account for `member` (created by the admin, linked to its person)."""
            password = "Team-Pass-42!"
            account = accounts.CreateAccount(
                auth_pb2.CreateAccountRequest(email=email, password=password, role_names=["staff"]),
                metadata=admin,
            ).account
            users.UpdatePerson(
                users_pb2.UpdatePersonRequest(
                    person=users_pb2.Person(id=member.person_id, account_id=account.id),
                    update_mask={"paths": ["account_id"]},
                )
            )
            return login(email, password)

        def get_as(metadata):
            return users_stub.GetStudent(users_pb2.GetStudentRequest(id=pupil.id), metadata=metadata).student

        mine = get_as(staff_login(teacher, "tina@school.example"))
        assert mine.has_full_access and mine.tag_id == "04A1B2C3D4" and mine.health_info == "Asthma", mine
        theirs = get_as(staff_login(other, "olga@school.example"))
        assert not theirs.has_full_access, theirs
        for field in ("tag_id", "birthday", "health_info", "sick", "guardian_contacts"):
            assert not theirs.HasField(field), f"{field} must be absent for other staff"
        assert theirs.first_name == "Mia" and theirs.group_id == group.id

        expect_code(
            lambda: fac.CreateRoom(fac_pb2.CreateRoomRequest(room=fac_pb2.Room(name="Raum 101"))),
            grpc.StatusCode.ALREADY_EXISTS,
        )
        expect_code(
            lambda: users.CreateStudent(
                users_pb2.CreateStudentRequest(student=users_pb2.Student(first_name="A", last_name="B"))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        print("people and places end to end: ok")


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
