"use client";
import { useEffect, useState } from "react";
import { openEvents, type ConnectionState, type Token } from "@/lib/events";

// JobEvent is the JSON contract of docs/events.md.
export type JobEvent = { id: string; type: string; team_id: string; job_id: string; status: string; progress: number; message?: string; time: string };

// JobStatus shows one job live: its status, a progress bar and every update received.
export function JobStatus({ teamId, jobId }: { teamId: string; jobId: string }) {
  const [updates, setUpdates] = useState<JobEvent[]>([]);
  const [connection, setConnection] = useState<ConnectionState>("connecting");
  const [notice, setNotice] = useState("");

  useEffect(() => {
    const filters = new URLSearchParams({ team_id: teamId, job_id: jobId });
    // After a gap the list misses updates: the job's state comes from the application's API.
    const reload = async () => {
      try {
        const response = await fetch(`/api/jobs?${filters}`);
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const job: JobEvent | null = await response.json();
        if (job) setUpdates((prev) => [...prev, job]);
        setNotice("Some updates were missed: state reloaded.");
      } catch {
        setNotice("Some updates were missed: reload the page.");
      }
    };
    // Delivery is at least once: the payload's id drops a duplicate.
    const add = (e: JobEvent) => setUpdates((prev) => (prev.some((u) => u.id === e.id) ? prev : [...prev, e]));
    return openEvents<JobEvent>({
      url: `/api/v1/events?${filters}`,
      getToken: () =>
        fetch(`/api/events-token?team_id=${encodeURIComponent(teamId)}`).then((r): Promise<Token> => {
          if (!r.ok) throw new Error(`token: HTTP ${r.status}`);
          return r.json();
        }),
      onEvent: add,
      onGap: reload,
      onState: setConnection,
    });
  }, [teamId, jobId]);

  const latest = updates.at(-1);
  return (
    <section>
      <h1>Job {jobId}</h1>
      <p data-testid="connection">{connection === "open" ? "live" : connection}</p>
      {notice && <p data-testid="notice">{notice}</p>}
      <p data-testid="status">{latest ? `${latest.status} ${latest.progress}%` : "waiting for updates"}</p>
      <progress max={100} value={latest?.progress ?? 0} />
      <ol data-testid="updates">
        {updates.map((u) => (
          <li key={u.id} data-status={u.status} data-progress={u.progress} data-team={u.team_id}>
            {u.status} {u.progress}%{u.message ? `: ${u.message}` : ""}
          </li>
        ))}
      </ol>
    </section>
  );
}
