"""The statements of the draws that stay SQL, each with the reason it is not written with the ORM.
Placeholders are PostgreSQL's `$1…` (api.db turns them into SQLite's `?1…`)."""

# A member's plays of a game: in all, today, and free today, read under the account lock on every
# play. The ORM can say it (Count with _filter) but builds it for ~0.9 ms of CPU each time.
PLAY_COUNTS = (
    "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN played_at >= $3 THEN 1 ELSE 0 END), 0) AS today,"
    " COALESCE(SUM(CASE WHEN played_at >= $3 AND free THEN 1 ELSE 0 END), 0) AS free_today"
    " FROM draw_play WHERE game_id = $1 AND member_id = $2"
)

# A play's terms as they are now, with the drawn prize still switched on: read on every play inside
# its transaction. As an ORM query (select_related) the query builder cost about 1 ms of CPU per
# play, 60% more than the whole play took before; the window is compared in SQL so no time is parsed.
PLAY_TERMS = (
    "SELECT g.name, g.cost_points, g.free_plays, g.daily_limit, g.total_limit,"
    " (g.status = 'ACTIVE' AND g.starts_at <= $3 AND g.ends_at > $3 AND p.active) AS open"
    " FROM draw_game g JOIN draw_prize p ON p.game_id = g.id WHERE g.id = $1 AND p.id = $2"
)

# A game's figures for operators: counts, a distinct count and sums over its plays joined with the
# points they granted (a report: conditional and distinct aggregates over a join).
GAME_TOTALS = (
    "SELECT COUNT(*) AS plays, COUNT(DISTINCT member_id) AS players,"
    " COALESCE(SUM(CASE WHEN free THEN 1 ELSE 0 END), 0) AS free_plays,"
    " COALESCE(SUM(cost_points), 0) AS consumed, COALESCE(SUM(e.points), 0) AS granted"
    " FROM draw_play d LEFT JOIN points_entry e ON e.id = d.grant_entry_id WHERE d.game_id = $1"
)
