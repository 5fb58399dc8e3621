/** PostgreSQL schema version 3: what the refunds repositories of issue 14 add (empty if nothing). */
export const SQL_V3 = `SELECT 1;`;
