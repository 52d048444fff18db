-- description: Who owned each sold artwork when: its artist from the upload, then each buyer.
-- materialize: full
WITH transfers AS (
  SELECT a.asset_id, a.artist_id AS owner_id, a.uploaded_at AS owned_from,
         CAST(NULL AS VARCHAR) AS acquired_by_sale
  FROM digital_assets.asset_catalog.assets a
  WHERE a.asset_id IN (SELECT asset_id FROM marketplace.provenance.sales)
  UNION ALL
  SELECT asset_id, buyer_id, sold_at, sale_id
  FROM marketplace.provenance.sales
)
SELECT asset_id, owner_id, owned_from,
       LEAD(owned_from) OVER (PARTITION BY asset_id ORDER BY owned_from) AS owned_until,
       acquired_by_sale
FROM transfers
ORDER BY asset_id, owned_from
