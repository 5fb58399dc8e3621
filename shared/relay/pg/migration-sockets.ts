/**
 * PostgreSQL schema version 6: the `/v1/events` sockets of every relay, so RELAY_EVENTS_PER_TERMINAL
 * holds per terminal across relays (pg/sockets.ts). A row per open socket; rows of a relay that
 * died are removed when they would be closed (nothing else reads them).
 */
export const SQL_V6 = `
  CREATE TABLE event_sockets (
    id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    relay TEXT NOT NULL,
    opened_ms BIGINT NOT NULL
  );
  CREATE INDEX event_sockets_terminal ON event_sockets (terminal, opened_ms);
`;
