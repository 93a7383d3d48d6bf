"use client";
import { useEffect, useState } from "react";
import { openEvents, type ConnectionState, type SnapshotEnd, type Token } from "@/lib/events";
import type { JobEvent } from "./job-status";

// Jobs maps a job id to its newest event.
type Jobs = Map<string, JobEvent>;

// JobList shows every job of a team with its current status, from the stream alone: the
// bridge's snapshot (snapshot=1; the EventStream needs spec.bridge.snapshot) fills the list on
// connect and again after every gap, live events update it. No database is read.
export function JobList({ teamId }: { teamId: string }) {
  const [jobs, setJobs] = useState<Jobs>(new Map());
  const [snapshot, setSnapshot] = useState<SnapshotEnd | null>(null); // null: still loading
  const [connection, setConnection] = useState<ConnectionState>("connecting");

  useEffect(() => {
    // The snapshot being received on the current connection; it becomes the list at its end.
    let next: Jobs = new Map();
    return openEvents<JobEvent>({
      url: `/api/v1/events?${new URLSearchParams({ team_id: teamId, snapshot: "1" })}`,
      getToken: () =>
        fetch(`/api/events-token?team_id=${encodeURIComponent(teamId)}`).then((r): Promise<Token> => {
          if (!r.ok) throw new Error(`token: HTTP ${r.status}`);
          return r.json();
        }),
      onState: (state) => {
        if (state === "open") next = new Map(); // a snapshot cut off with the old connection is dropped
        setConnection(state);
      },
      onSnapshot: (e) => next.set(e.job_id, e),
      onSnapshotEnd: (end) => {
        const received = next;
        next = new Map();
        // A complete snapshot is the current state: it replaces the list (a job it lacks aged
        // out). A partial one may lack jobs the list still knows: it only updates them.
        setJobs((prev) => (end.partial ? new Map([...prev, ...received]) : received));
        setSnapshot(end);
      },
      // Live events follow the snapshot. Delivery is at least once: a redelivered event, with
      // the id the row already shows, changes nothing.
      onEvent: (e) => setJobs((prev) => (prev.get(e.job_id)?.id === e.id ? prev : new Map(prev).set(e.job_id, e))),
      onGap: () => {}, // a new snapshot follows every gap
    });
  }, [teamId]);

  const rows = [...jobs.values()].sort((a, b) => a.job_id.localeCompare(b.job_id, undefined, { numeric: true }));
  return (
    <section>
      <h1>Jobs of team {teamId}</h1>
      <p data-testid="connection">{connection === "open" ? "live" : connection}</p>
      <p data-testid="snapshot" data-keys={snapshot?.keys}>
        {snapshot === null ? "loading" : snapshot.partial ? "partial: jobs that changed before the bridge started may be missing" : "complete"}
      </p>
      <table>
        <thead>
          <tr><th>job</th><th>status</th><th>progress</th></tr>
        </thead>
        <tbody data-testid="jobs">
          {rows.map((j) => (
            <tr key={j.job_id} data-job={j.job_id} data-team={j.team_id} data-status={j.status} data-progress={j.progress}>
              <td>{j.job_id}</td>
              <td>{j.status}</td>
              <td><progress max={100} value={j.progress} /> {j.progress}%</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
