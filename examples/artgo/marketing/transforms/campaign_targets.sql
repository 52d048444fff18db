-- description: The hundred trending artists, their sales, and the campaign segment each falls in.
-- materialize: full
WITH s AS (
  SELECT a.artist_id, COUNT(*) AS sales, SUM(s.price) AS revenue
  FROM marketplace.provenance.sales s
  JOIN digital_assets.asset_catalog.assets a ON a.asset_id = s.asset_id
  GROUP BY a.artist_id
)
SELECT t.artist_id, t.rank AS trend_rank, t.trend_score,
       COALESCE(s.sales, 0) AS sales, COALESCE(s.revenue, 0) AS revenue,
       CASE WHEN COALESCE(s.sales, 0) = 0 THEN 'hidden_gem'
            WHEN t.rank <= 20 THEN 'rising_star'
            ELSE 'proven_seller' END AS segment
FROM artwork_engagement.engagement.trending_artists t
LEFT JOIN s ON s.artist_id = t.artist_id
WHERE t.rank <= 100
