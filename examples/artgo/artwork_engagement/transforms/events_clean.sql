-- description: Engagement events without bot, crawler and headless-browser traffic.
-- Events arrive in time order, so each run adds only those after the newest it holds.
-- materialize: append
-- watermark: occurred_at
SELECT event_id, event_type, asset_id, user_id, dwell_ms, occurred_at
FROM artwork_engagement.engagement.events_raw
WHERE NOT regexp_like(user_agent, '(?i)bot|crawler|spider|headless')
