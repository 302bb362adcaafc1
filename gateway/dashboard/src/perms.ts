// What the signed-in caller may do on the board, from WhoAmI (effective permissions, read
// when the board starts, and the caller's staff record). The page offers only the actions
// these allow; the services decide again on every call (a stale offer fails with the
// service's own message).
//
// `grants` matches like phoenix_common::authz::permission_matches: `*:*` and `admin:*`
// grant everything; otherwise resource and action each match when equal, `*`, or a
// `prefix*` of the required part.

export function permissionMatches(held: string, required: string): boolean {
  if (held === "*:*" || held === "admin:*") return true;
  const [reqRes, reqAct, ...reqRest] = required.split(":");
  const [heldRes, heldAct, ...heldRest] = held.split(":");
  if (reqRest.length || heldRest.length || !reqRes || !reqAct || heldRes === undefined || heldAct === undefined) {
    return false;
  }
  const part = (h: string, r: string) => h === r || (h.endsWith("*") && r.startsWith(h.slice(0, -1)));
  return part(heldRes, reqRes) && part(heldAct, reqAct);
}

export function grants(held: readonly string[], required: string): boolean {
  return held.some((h) => permissionMatches(h, required));
}

export interface Caps {
  /** The caller's staff record (supervising, claiming), if any. */
  staffId: string | undefined;
  /** users.ListStudents (`users:read`). */
  search: boolean;
  /** CheckInStudent, CheckOutStudent, CheckOutForDay (`visits:update`). */
  visits: boolean;
  /** UpdateStudent `sick` (`users:update`). */
  markSick: boolean;
  /** StartSession (`groups:create`) and what its form lists (rooms, activities, groups, staff). */
  start: boolean;
  /** EndSession / ClaimSession (`groups:update`). */
  update: boolean;
  /** Ending sessions the caller does not supervise (`sessions:manage`). */
  manage: boolean;
}

export const NO_CAPS: Caps = {
  staffId: undefined,
  search: false,
  visits: false,
  markSick: false,
  start: false,
  update: false,
  manage: false,
};

export function capsFrom(permissions: readonly string[], staffId: bigint | undefined): Caps {
  const has = (p: string) => grants(permissions, p);
  return {
    staffId: staffId === undefined ? undefined : String(staffId),
    search: has("users:read"),
    visits: has("visits:update"),
    markSick: has("users:update"),
    start:
      has("groups:create") && has("rooms:read") && has("activities:read") && has("groups:read") && has("users:read"),
    update: has("groups:update"),
    manage: has("sessions:manage"),
  };
}

/** Whether to offer "end session" for a room supervised by `supervisorIds`. */
export function mayEnd(caps: Caps, supervisorIds: readonly string[]): boolean {
  if (!caps.update) return false;
  return caps.manage || (caps.staffId !== undefined && supervisorIds.includes(caps.staffId));
}

/** Whether to offer "claim" (a running session nobody supervises; needs a staff record). */
export function mayClaim(caps: Caps, supervisorIds: readonly string[]): boolean {
  return caps.update && caps.staffId !== undefined && supervisorIds.length === 0;
}
