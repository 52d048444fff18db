-- description: How many rows each input holds, recomputed every hour.
-- materialize: full
-- every: 1h
{%- for i in inputs %}
{% if not loop.first %}UNION ALL
{% endif %}SELECT '{{ i.ref }}' AS input, count(*) AS row_count, now() AS computed_at FROM {{ i.ref }}
{%- endfor %}
