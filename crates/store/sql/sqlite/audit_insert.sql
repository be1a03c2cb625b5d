INSERT INTO audit_events (tenant_id, id, occurred_at, request_id, actor_id, actor_kind, action, resource, outcome, ip, user_agent, details, risk_score)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
