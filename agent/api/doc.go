// Package api serves the agent's local API: on a unix socket (and, when
// asked, a TCP address) it answers /healthz, /readyz, /status (JSON) and
// /metrics (Prometheus), and receives webhooks at POST /hooks/git.
//
// Webhooks are only a trigger: the payload is never read beyond checking
// its signature, and the agent fetches and verifies the repository by
// itself. A webhook must carry a valid HMAC-SHA256 of the raw body
// (GitHub's X-Hub-Signature-256, Gitea's X-Gitea-Signature, Forgejo's
// X-Forgejo-Signature, or the generic X-Berth-Signature-256) or GitLab's
// X-Gitlab-Token, compared in constant time. Oversized bodies get 413, a
// missing or wrong signature 401, too many requests 429, and a delivery ID
// seen before is acknowledged and ignored.
//
// The unix socket also takes POST /trigger, which berth suspend, resume,
// pin and unpin use to wake the agent; the TCP listener does not.
package api
