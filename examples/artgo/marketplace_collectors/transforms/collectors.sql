-- description: One row per buyer: a display name, a contact address, a country, the first purchase and how many.
-- materialize: full
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
