import { NextRequest } from "next/server";

// GET /api/jobs?team_id=42&job_id=7 returns a job's current state from the application's
// database, the source of truth that events only mirror. The page calls it after a gap (events
// were missed). This example has no database and answers null: state unknown.
export async function GET(request: NextRequest) {
  const teamId = request.nextUrl.searchParams.get("team_id");
  const jobId = request.nextUrl.searchParams.get("job_id");
  if (!teamId || !jobId) return Response.json({ error: "team_id and job_id are required" }, { status: 400 });
  return Response.json(null, { headers: { "Cache-Control": "no-store" } });
}
