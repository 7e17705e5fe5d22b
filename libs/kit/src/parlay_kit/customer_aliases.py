"""Merged customer -> survivor, for a service that keeps its own copy of profile's merges.

Profile owns merges (ProfilesMerged / ProfilesUnmerged). Services that file things under a
customer (conversation, orders) keep a `customer_aliases` table in their own schema, so that
"the survivor's conversations/orders" include the merged customer's, and an unmerge gives them
back, with no call to profile on the read path. Each service creates the table in its own
migrations (migrations are history and stay as written); this mixin holds the queries.
"""

from __future__ import annotations

import asyncpg

#: Merge chains deeper than this are not followed (a guard against a cycle in bad data).
MAX_DEPTH = 64


class CustomerAliases:
    """Queries on `{schema}.customer_aliases`; mixed into a read model that has `schema`."""

    schema: str

    async def set_alias(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        customer_id: str,
        survivor: str,
        merge_id: str,
    ) -> None:
        await conn.execute(
            f"""INSERT INTO {self.schema}.customer_aliases
                    (tenant_id, customer_id, survivor_customer_id, merge_id)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (tenant_id, customer_id) DO UPDATE
                SET survivor_customer_id = EXCLUDED.survivor_customer_id,
                    merge_id = EXCLUDED.merge_id""",
            tenant_id,
            customer_id,
            survivor,
            merge_id,
        )

    async def remove_alias(
        self, conn: asyncpg.Connection, tenant_id: str, customer_id: str, survivor: str
    ) -> None:
        """Undo a merge (only if `customer_id` still points at `survivor`)."""
        await conn.execute(
            f"""DELETE FROM {self.schema}.customer_aliases
                WHERE tenant_id = $1 AND customer_id = $2 AND survivor_customer_id = $3""",
            tenant_id,
            customer_id,
            survivor,
        )

    async def merged_into(
        self, conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, customer_id: str
    ) -> list[str]:
        """The customer and every customer merged into it (directly or through others)."""
        rows = await conn.fetch(
            f"""WITH RECURSIVE tree(customer_id, depth) AS (
                    SELECT $2::text, 0
                    UNION ALL
                    SELECT a.customer_id, tree.depth + 1
                    FROM tree JOIN {self.schema}.customer_aliases a
                      ON a.tenant_id = $1 AND a.survivor_customer_id = tree.customer_id
                    WHERE tree.depth < {MAX_DEPTH}
                )
                SELECT DISTINCT customer_id FROM tree""",
            tenant_id,
            customer_id,
        )
        return [r[0] for r in rows]
