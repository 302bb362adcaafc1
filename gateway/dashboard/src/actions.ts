// The board's actions, each one existing RPC through the gateway (grpc-web, the caller's
// token). No state here: the board learns the outcome from WatchPresence like everyone
// else's board does, so what one browser does appears on every other within the stream's
// latency.

import { createClient, type Transport } from "@connectrpc/connect";
import { ActiveService, CheckoutDestination } from "./gen/phoenix/active/v1/active_pb";
import { ActivitiesService } from "./gen/phoenix/activities/v1/activities_pb";
import { AuthService } from "./gen/phoenix/auth/v1/auth_pb";
import { EducationService } from "./gen/phoenix/education/v1/education_pb";
import { FacilitiesService } from "./gen/phoenix/facilities/v1/facilities_pb";
import { Presence, type Student, UsersService } from "./gen/phoenix/users/v1/users_pb";
import { type Caps, capsFrom } from "./perms";

/** A pupil found by the search, as the page shows them. */
export interface FoundPupil {
  id: string;
  /** First name + last initial, like the board. */
  name: string;
  schoolClass: string;
  presence: Presence;
  /** IN_ROOM: the room's name. */
  roomName: string | undefined;
  /** The caller has full access (may check in, sees sickness). */
  full: boolean;
  /** Reported sick (known with full access only). */
  sick: boolean;
}

/** One entry of a select in the start-session form. */
export interface Choice {
  id: string;
  label: string;
}

export interface StartChoices {
  rooms: Choice[];
  activities: Choice[];
  groups: Choice[];
  staff: Choice[];
}

const id = (s: string) => BigInt(s);

export function shortName(first: string, last: string): string {
  const initial = [...last.trim()][0];
  return initial ? `${first.trim()} ${initial}.` : first.trim();
}

function found(s: Student): FoundPupil {
  return {
    id: String(s.id),
    name: shortName(s.firstName, s.lastName),
    schoolClass: s.schoolClass,
    presence: s.location?.presence ?? Presence.UNSPECIFIED,
    roomName: s.location?.roomName,
    full: s.hasFullAccess,
    sick: s.sick ?? false,
  };
}

const byLabel = (a: Choice, b: Choice) => a.label.localeCompare(b.label, undefined, { numeric: true });

export class Actions {
  private readonly auth;
  private readonly active;
  private readonly users;
  private readonly facilities;
  private readonly activities;
  private readonly education;

  constructor(transport: Transport) {
    this.auth = createClient(AuthService, transport);
    this.active = createClient(ActiveService, transport);
    this.users = createClient(UsersService, transport);
    this.facilities = createClient(FacilitiesService, transport);
    this.activities = createClient(ActivitiesService, transport);
    this.education = createClient(EducationService, transport);
  }

  /** The caller's effective permissions and staff record. */
  async caps(): Promise<Caps> {
    const me = await this.auth.whoAmI({});
    return capsFrom(me.permissions, me.staffId);
  }

  /** Up to 20 active pupils whose name (or id) matches `query`. */
  async search(query: string): Promise<FoundPupil[]> {
    const res = await this.users.listStudents({ search: query, pageSize: 20 });
    return res.students.map(found);
  }

  /** Into the room's running session; from another room as a transfer. */
  async checkIn(studentId: string, sessionId: string): Promise<void> {
    await this.active.checkInStudent({ studentId: id(studentId), sessionId: id(sessionId), transfer: true });
  }

  async checkOut(studentId: string): Promise<void> {
    await this.active.checkOutStudent({ studentId: id(studentId) });
  }

  async goneHome(studentId: string): Promise<void> {
    await this.active.checkOutForDay({ studentId: id(studentId), destination: CheckoutDestination.HOME });
  }

  async markSick(studentId: string, sick: boolean): Promise<void> {
    await this.users.updateStudent({ student: { id: id(studentId), sick }, updateMask: { paths: ["sick"] } });
  }

  async endSession(sessionId: string): Promise<void> {
    await this.active.endSession({ id: id(sessionId) });
  }

  async claimSession(sessionId: string): Promise<void> {
    await this.active.claimSession({ sessionId: id(sessionId) });
  }

  async startSession(start: {
    roomId: string;
    activityId: string | undefined;
    groupId: string | undefined;
    supervisorIds: string[];
  }): Promise<void> {
    await this.active.startSession({
      roomId: id(start.roomId),
      activityId: start.activityId ? id(start.activityId) : undefined,
      educationGroupId: start.groupId ? id(start.groupId) : undefined,
      supervisorStaffIds: start.supervisorIds.map(id),
    });
  }

  /** What the start-session form offers (first 500 of each, by name). */
  async startChoices(): Promise<StartChoices> {
    const [rooms, activities, groups, staff] = await Promise.all([
      this.facilities.listRooms({ pageSize: 500 }),
      this.activities.listActivities({ pageSize: 500 }),
      this.education.listGroups({ pageSize: 500 }),
      this.users.listStaff({ pageSize: 500 }),
    ]);
    return {
      rooms: rooms.rooms.map((r) => ({ id: String(r.id), label: r.name })).sort(byLabel),
      activities: activities.activities.map((a) => ({ id: String(a.id), label: a.name })).sort(byLabel),
      groups: groups.groups.map((g) => ({ id: String(g.id), label: g.name })).sort(byLabel),
      staff: staff.staff.map((s) => ({ id: String(s.id), label: `${s.firstName} ${s.lastName}` })).sort(byLabel),
    };
  }
}
