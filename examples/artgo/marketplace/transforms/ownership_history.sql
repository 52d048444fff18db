-- description: Who owned each sold artwork when: its artist from the upload, then each buyer.
-- Owners who took over at the same moment are ordered by their sale, so that every run numbers
-- them alike. A sale changes only its artwork's owners: each run recomputes the artworks of the
-- sales added since the last, and they take the place of those artworks' rows.
-- materialize: merge
-- recompute_by: asset_id
WITH transfers AS (
  SELECT a.asset_id, a.artist_id AS owner_id, a.uploaded_at AS owned_from,
         CAST(NULL AS VARCHAR) AS acquired_by_sale
  FROM digital_assets.asset_catalog.assets a
  WHERE a.asset_id IN (SELECT asset_id FROM marketplace.provenance.sales)
  UNION ALL
  SELECT asset_id, buyer_id, sold_at, sale_id
  FROM marketplace.provenance.sales
)
SELECT asset_id,
       ROW_NUMBER() OVER owners AS owner_number,
       owner_id, owned_from,
       LEAD(owned_from) OVER owners AS owned_until,
       acquired_by_sale
FROM transfers
WINDOW owners AS (PARTITION BY asset_id ORDER BY owned_from, acquired_by_sale NULLS FIRST)
ORDER BY asset_id, owner_number
