-- Most viral artworks of the last day, with their titles (a join across two domains)
SELECT a.title, a.artist_id, v.views, v.likes, v.shares, round(v.virality_score, 2) AS score
FROM artwork_engagement.engagement.virality_daily v
JOIN digital_assets.asset_catalog.assets a ON a.asset_id = v.asset_id
WHERE v.day = (SELECT max(day) FROM artwork_engagement.engagement.virality_daily)
ORDER BY v.virality_score DESC LIMIT 5;

-- Marketplace revenue per currency
SELECT currency, count(*) AS sales, sum(price) AS revenue
FROM marketplace.provenance.sales
GROUP BY currency ORDER BY revenue DESC;

-- Rows the engagement contract refused at ingest, and why
SELECT _rule, _column, count(*) AS rows
FROM artwork_engagement.engagement.events_raw_quarantine
GROUP BY _rule, _column ORDER BY rows DESC;
