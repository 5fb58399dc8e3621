/** PostgreSQL schema version 5: what the bills repositories of issue 14 add (empty if nothing). */
export const SQL_V5 = `SELECT 1;`;
