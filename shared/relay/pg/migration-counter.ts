/** PostgreSQL schema version 4: what the counter repositories of issue 14 add (empty if nothing). */
export const SQL_V4 = `SELECT 1;`;
