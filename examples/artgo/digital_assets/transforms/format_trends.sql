-- description: Uploads per month and file format, and each format's share of the month's uploads.
-- materialize: full
WITH m AS (
  SELECT CAST(date_trunc('month', uploaded_at) AS DATE) AS month, format, COUNT(*) AS uploads
  FROM digital_assets.asset_catalog.assets
  GROUP BY 1, 2
)
SELECT month, format, uploads,
       CAST(uploads AS DOUBLE) / SUM(uploads) OVER (PARTITION BY month) AS share
FROM m
ORDER BY month, format
