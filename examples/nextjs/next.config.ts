import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // The browser talks to its own origin only: /api/v1/events is proxied to the bridge, so no
  // CORS is needed. `next build` compiles the rewrite, so EVENTS_BRIDGE_URL (the bridge
  // Service, e.g. http://job-status-bridge:8080) must be set when the app is built.
  async rewrites() {
    const bridgeURL = process.env.EVENTS_BRIDGE_URL;
    if (!bridgeURL) throw new Error("EVENTS_BRIDGE_URL is not set: the bridge's base URL, e.g. http://job-status-bridge:8080");
    return [{ source: "/api/v1/events", destination: `${bridgeURL.replace(/\/$/, "")}/api/v1/events` }];
  },
};

export default nextConfig;
