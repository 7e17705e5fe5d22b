"""Read models of the payments service (see readmodel.py for what each table holds)."""

from __future__ import annotations

from parlay_kit.db import Migration

MIGRATIONS = [
    # The first cut (kept so schemas that applied it migrate forward; it never held rows).
    Migration(
        "payments_0001_read_model",
        """
        CREATE TABLE {schema}.payments (
            tenant_id   text NOT NULL,
            payment_id text NOT NULL,
            order_id text NOT NULL,
            status      text NOT NULL,
            version     bigint NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, payment_id)
        );
        """,
    ),
    Migration(
        "payments_0002_payments_refunds_actions",
        """
        DROP TABLE {schema}.payments;
        CREATE TABLE {schema}.payments (
            payment_id          text        PRIMARY KEY,
            tenant_id           text        NOT NULL,
            order_id            text        NOT NULL,
            attempt             integer     NOT NULL,
            method              text        NOT NULL,
            status              text        NOT NULL,
            amount_minor        bigint      NOT NULL,
            currency            text        NOT NULL,
            customer_id         text        NOT NULL DEFAULT '',
            conversation_id     text        NOT NULL DEFAULT '',
            idempotency_key     text        NOT NULL DEFAULT '',
            channel             text        NOT NULL DEFAULT '',
            channel_account_id  text        NOT NULL DEFAULT '',
            address             text        NOT NULL DEFAULT '',
            description         text        NOT NULL DEFAULT '',
            provider            text        NOT NULL DEFAULT '',
            provider_account_id text        NOT NULL DEFAULT '',
            provider_session_id text        NOT NULL DEFAULT '',
            provider_payment_id text        NOT NULL DEFAULT '',
            checkout_url        text        NOT NULL DEFAULT '',
            expires_at          timestamptz,
            captured_minor      bigint      NOT NULL DEFAULT 0,
            captured_currency   text        NOT NULL DEFAULT '',
            capture_event_id    text        NOT NULL DEFAULT '',
            refunded_minor      bigint      NOT NULL DEFAULT 0,
            flag_reason         text        NOT NULL DEFAULT '',
            failure_reason      text        NOT NULL DEFAULT '',
            created_at          timestamptz NOT NULL,
            updated_at          timestamptz NOT NULL,
            version             bigint      NOT NULL
        );
        CREATE INDEX payments_order ON {schema}.payments (tenant_id, order_id, attempt);
        -- Partial: a payment is indexed once it has a session / payment intent (most rows of
        -- a cash-heavy shop never do, and the insert of a new payment touches fewer indexes).
        CREATE INDEX payments_session ON {schema}.payments
            (provider_session_id, provider_account_id, tenant_id) WHERE provider_session_id <> '';
        CREATE INDEX payments_intent ON {schema}.payments
            (provider_payment_id, provider_account_id, tenant_id) WHERE provider_payment_id <> '';

        CREATE TABLE {schema}.payment_refunds (
            payment_id         text        NOT NULL,
            refund_id          text        NOT NULL,
            -- The refund's place among the payment's refunds (the order they were made in).
            seq                integer     NOT NULL,
            tenant_id          text        NOT NULL,
            amount_minor       bigint      NOT NULL,
            status             text        NOT NULL,
            idempotency_key    text        NOT NULL DEFAULT '',
            provider_refund_id text        NOT NULL DEFAULT '',
            reason             text        NOT NULL DEFAULT '',
            source             text        NOT NULL DEFAULT '',
            created_at         timestamptz NOT NULL,
            PRIMARY KEY (payment_id, refund_id)
        );

        -- What the gateway reported doing for a payment (invoice sent, pre-checkout answered,
        -- session expired, ...): operational record, not rebuilt from parlay.payments.v1.
        CREATE TABLE {schema}.payment_actions (
            payment_id          text        NOT NULL,
            action              text        NOT NULL,
            request_event_id    text        NOT NULL,
            tenant_id           text        NOT NULL,
            channel_account_id  text        NOT NULL DEFAULT '',
            ok                  boolean     NOT NULL,
            error_code          text        NOT NULL DEFAULT '',
            error_message       text        NOT NULL DEFAULT '',
            provider_object_id  text        NOT NULL DEFAULT '',
            provider_message_id text        NOT NULL DEFAULT '',
            completed_at        timestamptz,
            PRIMARY KEY (payment_id, action, request_event_id)
        );
        """,
    ),
    Migration(
        "payments_0002_fillfactor",
        # Most updates of a payment (captured, refunded, expired) change no indexed column: with
        # room left on each page Postgres updates the row in place (HOT) without touching the
        # three indexes. New pages only; the table keeps its rows.
        "ALTER TABLE {schema}.payments SET (fillfactor = 80);",
    ),
]
