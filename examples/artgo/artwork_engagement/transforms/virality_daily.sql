-- description: Views, likes and shares per artwork and day, and a virality score from them.
-- Each run recomputes the newest day it holds (more events may have come for it) and the
-- days after, which replace those days' rows (as merging them by (asset_id, day) would): the
-- older days stay as they are.
-- materialize: merge
-- watermark: day
WITH d AS (
  SELECT asset_id, CAST(occurred_at AS DATE) AS day,
         SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END) AS views,
         SUM(CASE WHEN event_type = 'like' THEN 1 ELSE 0 END) AS likes,
         SUM(CASE WHEN event_type = 'share' THEN 1 ELSE 0 END) AS shares
  FROM artwork_engagement.engagement.events_clean
  GROUP BY 1, 2
)
SELECT asset_id, day, views, likes, shares,
       (likes + 3.0 * shares) * 100.0 / (views + 20) AS virality_score
FROM d
ORDER BY day, asset_id
