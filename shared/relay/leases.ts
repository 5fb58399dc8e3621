/**
 * How long work stays with the relay that took it (PostgreSQL, several relays; on SQLite the one
 * process owns everything and these only pace its own follow-ups). A relay that dies keeps its
 * work no longer than this: then any other relay takes it over.
 */

/**
 * A create (order or refund) being sent to WeChat Pay: longer than one create call can take with its
 * retries (3 attempts of 10 s), so another relay re-sends only a create whose relay died. An
 * identical re-send is harmless, but WeChat Pay renews an order's code_url and may refuse a refund
 * sent twice at once (frequency).
 */
export const SEND_LEASE_MS = 30_000;

/**
 * A due order or refund claimed by a relay's reconciler or refund follower (a query, maybe a close or
 * a re-send): no other relay checks it meanwhile. Every check reschedules or unwatches it well before.
 */
export const CHECK_LEASE_MS = 60_000;
