import { SignJWT } from "jose";
import { NextRequest } from "next/server";

// GET /api/events-token?team_id=42 mints a short-lived bridge token signed with the
// EventStream's HS256 Secret. The secret stays on the server: the browser only sees tokens.
export async function GET(request: NextRequest) {
  // Authorize here: take the user and their teams from your session. This example has no
  // login and grants the team it is asked for.
  const teamId = request.nextUrl.searchParams.get("team_id");
  if (!teamId) return Response.json({ error: "team_id is required" }, { status: 400 });
  const secret = process.env.EVENTS_JWT_SECRET;
  if (!secret) return Response.json({ error: "EVENTS_JWT_SECRET is not set" }, { status: 500 });
  const exp = Math.floor(Date.now() / 1000) + Number(process.env.EVENTS_TOKEN_TTL_SECONDS ?? 300);
  const token = await new SignJWT({ teams: [teamId], scope: "events:read" })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(`example-user-${teamId}`)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));
  // The lifetime left, measured on the server's clock: the browser's may be off.
  const expiresIn = exp - Date.now() / 1000;
  return Response.json({ token, expiresIn }, { headers: { "Cache-Control": "no-store" } });
}
