import { JobList } from "../job-list";

// /jobs?team_id=42 lists every job of team 42 with its current status.
export default async function Page({ searchParams }: { searchParams: Promise<{ team_id?: string }> }) {
  const { team_id: teamId } = await searchParams;
  if (!teamId) return <p>Open this page as /jobs?team_id=42.</p>;
  return <JobList teamId={teamId} />;
}
