-- description: {{ dataset_description }}
-- materialize: full
-- every: 1h
SELECT {{ columns | map(attribute="name") | join(", ") }}
FROM {{ inputs[0].ref }}
