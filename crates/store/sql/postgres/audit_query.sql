SELECT tenant_id, id, occurred_at, request_id, actor_id, actor_kind, action, resource, outcome, ip, user_agent, details::text AS details, risk_score
FROM audit_events
WHERE tenant_id = $1
  AND ($2::uuid IS NULL OR actor_id = $2)
  AND ($3::text IS NULL OR action = $3)
  AND ($4::bigint IS NULL OR occurred_at >= $4)
  AND ($5::bigint IS NULL OR occurred_at < $5)
  AND ($6::uuid IS NULL OR id < $6)
ORDER BY id DESC
LIMIT $7
