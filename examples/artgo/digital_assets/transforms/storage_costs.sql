-- description: Bytes stored per format at the end of each month, and what they cost at $0.023 a GB.
-- materialize: full
WITH m AS (
  SELECT CAST(date_trunc('month', uploaded_at) AS DATE) AS month, format, SUM(file_bytes) AS added
  FROM digital_assets.asset_catalog.assets
  GROUP BY 1, 2
),
c AS (
  SELECT month, format, SUM(added) OVER (PARTITION BY format ORDER BY month) AS stored_bytes
  FROM m
)
SELECT month, format, stored_bytes,
       CAST(stored_bytes / 1e9 * 0.023 AS DECIMAL(12, 2)) AS cost_usd
FROM c
ORDER BY month, format
