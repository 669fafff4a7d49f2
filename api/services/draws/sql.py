"""The statements of the draws that stay SQL, each with the reason it is not written with the ORM.
Placeholders are PostgreSQL's `$1…` (api.db turns them into SQLite's `?1…`)."""

# A member's plays of a game: in all, today, and free today. Three conditional counts in one round
# trip, read under the account lock on every play (the ORM would need three counts).
PLAY_COUNTS = (
    "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN played_at >= $3 THEN 1 ELSE 0 END), 0) AS today,"
    " COALESCE(SUM(CASE WHEN played_at >= $3 AND free THEN 1 ELSE 0 END), 0) AS free_today"
    " FROM draw_play WHERE game_id = $1 AND member_id = $2"
)

# A game's figures for operators: counts, a distinct count and sums over its plays joined with the
# points they granted (a report: conditional and distinct aggregates over a join).
GAME_TOTALS = (
    "SELECT COUNT(*) AS plays, COUNT(DISTINCT member_id) AS players,"
    " COALESCE(SUM(CASE WHEN free THEN 1 ELSE 0 END), 0) AS free_plays,"
    " COALESCE(SUM(cost_points), 0) AS consumed, COALESCE(SUM(e.points), 0) AS granted"
    " FROM draw_play d LEFT JOIN points_entry e ON e.id = d.grant_entry_id WHERE d.game_id = $1"
)
