"""PostgreSQL keyword ranking that stays cheap at a million chunks.

Two costs grew with the table in the first "idf_ts_rank" (BM25's IDF x ts_rank per query
term): the document frequency of each term, counted over the GIN index at every query (a
common word at 1M chunks is hundreds of thousands of heap rows to visit), and ``ts_rank`` on
every row matching any term. Here:

- ``chunks_terms`` holds each lexeme's document frequency (and, under the empty lexeme, the
  number of chunks), kept exact by statement-level triggers on ``chunks``: the IDF of a term
  is one primary-key lookup. Triggers upsert in lexeme order, so concurrent writers wait for
  each other briefly but never deadlock.
- Only candidates are ranked: rows matching the query's rarest terms, taking terms from the
  rarest up while their expected matches in the searched rows stay within a budget (the
  rarest term always counts). Every candidate is then scored with all the query's terms. A
  row that holds only common words scores little anyway; on SciFact test a budget of 500
  rows kept nDCG@10 (0.690 against 0.685 ranking every match) at a quarter of the time.
"""

from __future__ import annotations

TERMS_TABLE = "chunks_terms"
RANK_BUDGET = 500  # expected candidate rows (within the filters) that get ranked
MAX_CANDIDATES = 20000  # hard cap when even the rarest term matches more rows than this
SHARE_CAP = 20000  # filtered rows counted to estimate the filters' share of the table


def term_stats_ddl() -> list[str]:
    """The ``chunks_terms`` table and the triggers that keep it exact (idempotent)."""
    upsert = (
        f"INSERT INTO {TERMS_TABLE} (lexeme, df) SELECT lexeme, sum(n) FROM ({{rows}}) AS d "
        "GROUP BY lexeme HAVING sum(n) <> 0 ORDER BY lexeme "
        f"ON CONFLICT (lexeme) DO UPDATE SET df = {TERMS_TABLE}.df + EXCLUDED.df;"
    )

    def counted(table: str, sign: str) -> str:
        # One row per (chunk, lexeme) plus one '' row per chunk: the total lives under ''.
        return (
            f"SELECT unnest(tsvector_to_array(tsv)) AS lexeme, {sign}1 AS n FROM {table} "
            f"UNION ALL SELECT '', {sign}1 FROM {table}"
        )

    changed = "SELECT o.* FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.tsv <> o.tsv"
    changed_new = "SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.tsv <> o.tsv"
    functions = {
        "chunk_terms_added": upsert.format(rows=counted("new_rows", "")),
        "chunk_terms_removed": upsert.format(rows=counted("old_rows", "-")),
        "chunk_terms_changed": upsert.format(
            rows=f"SELECT unnest(tsvector_to_array(tsv)) AS lexeme, -1 AS n FROM ({changed}) c "
            f"UNION ALL SELECT unnest(tsvector_to_array(tsv)), 1 FROM ({changed_new}) c"
        ),
        "chunk_terms_truncated": f"DELETE FROM {TERMS_TABLE};",
    }
    statements = [
        f"CREATE TABLE IF NOT EXISTS {TERMS_TABLE} (lexeme TEXT NOT NULL PRIMARY KEY, "
        "df BIGINT NOT NULL)"
    ]
    for name, body in functions.items():
        statements.append(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$ "
            f"BEGIN {body} RETURN NULL; END $fn$"
        )
    triggers = {
        "chunk_terms_after_insert": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS new_rows",
        "chunk_terms_after_delete": "AFTER DELETE ON chunks REFERENCING OLD TABLE AS old_rows",
        "chunk_terms_after_update": (
            "AFTER UPDATE ON chunks REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        ),
        "chunk_terms_after_truncate": "AFTER TRUNCATE ON chunks",
    }
    functions_of = dict(zip(triggers, functions, strict=True))
    for name, when in triggers.items():
        statements.append(
            f"CREATE OR REPLACE TRIGGER {name} {when} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {functions_of[name]}()"
        )
    return statements


def rebuild_term_stats_sql() -> list[str]:
    """Statements that recount ``chunks_terms`` from the rows (migration of existing data)."""
    return [
        f"DELETE FROM {TERMS_TABLE}",
        f"INSERT INTO {TERMS_TABLE} (lexeme, df) "
        "SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunks') "
        "UNION ALL SELECT '', count(*) FROM chunks",
    ]


def idf_rank_sql(columns: str, where: str, weights: str, normalization: int) -> str:
    """Best ``:k`` rows by the sum over query terms of IDF x ts_rank of that term alone.

    ``:terms`` are the query's words; ``where`` the filters on alias ``c``. The filtered share
    of the table (``f``, counted up to the whole budget's worth of rows) scales the budget, so
    one owner among many still gets about ``:budget`` candidates of their own.
    """
    rank = f"ts_rank('{weights}'::float4[], cand.v, t.q, {int(normalization)})"
    names = [column.strip() for column in columns.split(",")]
    in_chunks = ", ".join(f"c.{name}" for name in names)
    in_cand = ", ".join(f"cand.{name}" for name in names)
    share = (
        "SELECT LEAST(1.0, GREATEST(1, (SELECT count(*) FROM (SELECT 1 FROM chunks c "
        f"WHERE TRUE{where} LIMIT :share_cap) AS f))::float8 / GREATEST(1, n.total))"
        if where
        else "SELECT 1.0::float8"
    )
    return (
        f"WITH n AS (SELECT COALESCE((SELECT df FROM {TERMS_TABLE} WHERE lexeme = ''), 0) "
        "AS total), "
        f"f AS ({share} AS share FROM n), "
        "t AS (SELECT CAST(quote_literal(s.lexeme) AS tsquery) AS q, "
        "ln(1.0 + (GREATEST(n.total, s.df) - s.df + 0.5) / (s.df + 0.5)) AS idf, "
        "sum(s.df) OVER (ORDER BY s.df, s.lexeme) AS cum, "
        "row_number() OVER (ORDER BY s.df, s.lexeme) AS rn "
        "FROM (SELECT DISTINCT x.lexeme, st.df FROM unnest(CAST(:terms AS text[])) AS term "
        "CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('english', term))) "
        f"AS x(lexeme) JOIN {TERMS_TABLE} st ON st.lexeme = x.lexeme WHERE st.df > 0) AS s "
        "CROSS JOIN n), "
        "pick AS (SELECT CAST(string_agg(CAST(t.q AS text), ' | ') AS tsquery) AS q "
        "FROM t, f WHERE t.rn = 1 OR t.cum * f.share <= :budget), "
        # Materialised with the tsvector copied out of its compressed/TOASTed form once, not
        # once per query term by every ts_rank call.
        f"cand AS MATERIALIZED (SELECT {in_chunks}, (c.tsv || ''::tsvector) AS v FROM chunks c "
        f"WHERE c.tsv @@ (SELECT q FROM pick){where} LIMIT :max_candidates) "
        f"SELECT {in_cand}, "
        f"(SELECT sum(t.idf * {rank}) FROM t WHERE cand.v @@ t.q) AS score "
        "FROM cand ORDER BY score DESC, cand.id LIMIT :k"
    )
