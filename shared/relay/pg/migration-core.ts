/** PostgreSQL schema version 2: what the core repositories of issue 14 add (empty if nothing). */
export const SQL_V2 = `SELECT 1;`;
