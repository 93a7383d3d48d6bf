import { JobStatus } from "./job-status";

// /?team_id=42&job_id=7 follows job 7 of team 42.
export default async function Page({ searchParams }: { searchParams: Promise<{ team_id?: string; job_id?: string }> }) {
  const { team_id: teamId, job_id: jobId } = await searchParams;
  if (!teamId || !jobId) return <p>Open this page as /?team_id=42&amp;job_id=7.</p>;
  return <JobStatus teamId={teamId} jobId={jobId} />;
}
