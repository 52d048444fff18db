-- description: One row per buyer: a display name, a contact address, a country, the first purchase and how many.
-- A sale changes only its buyer's row: each run recomputes the buyers of the sales added since
-- the last.
-- materialize: merge
-- recompute_by: collector_id
SELECT buyer_id AS collector_id,
       concat('Collector ', substr(buyer_id, 2)) AS display_name,
       concat('collector.', lower(buyer_id), '@mail.artgo.example') AS contact_email,
       CASE CAST(right(buyer_id, 1) AS INT) % 4
         WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' WHEN 2 THEN 'GB' ELSE 'US' END AS country,
       min(sold_at) AS first_purchase_at,
       count(*) AS purchases
FROM marketplace.provenance.sales
GROUP BY buyer_id
ORDER BY buyer_id
