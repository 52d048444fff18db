-- description: Artists ranked by the virality of their artworks over the last seven days.
-- materialize: full
WITH recent AS (
  SELECT v.asset_id, v.views, v.virality_score
  FROM artwork_engagement.engagement.virality_daily v
  WHERE v.day > (SELECT MAX(day) FROM artwork_engagement.engagement.virality_daily) - INTERVAL '7' DAY
),
per_artist AS (
  SELECT a.artist_id, COUNT(DISTINCT r.asset_id) AS artworks, SUM(r.views) AS views,
         SUM(r.virality_score) AS trend_score
  FROM recent r
  JOIN digital_assets.asset_catalog.assets a ON a.asset_id = r.asset_id
  GROUP BY a.artist_id
)
SELECT artist_id, artworks, views, trend_score,
       ROW_NUMBER() OVER (ORDER BY trend_score DESC, artist_id) AS rank
FROM per_artist
