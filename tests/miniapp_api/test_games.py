"""The games endpoints: the live campaigns with odds and turns, an instant-win play once per
Idempotency-Key, a quiz checked on the server."""

from __future__ import annotations

from tests.miniapp_api.conftest import API, Client, bearer, login, loyalty_of

QUIZ = {
    "id": "do-vui",
    "kind": "quiz",
    "name": "Đố vui cà phê",
    "starts_at": "2026-01-01T00:00:00+07:00",
    "ends_at": "2027-12-31T23:59:59+07:00",
    "cost": {"free_turns_per_day": 1, "points": 0},
    "prizes": [
        {"id": "diem-30", "name": "30 điểm", "reward": "points", "points": 30},
        {"id": "tiec", "name": "Chúc may mắn", "reward": "nothing"},
    ],
    "questions": [
        {"id": "q1", "text": "Cà phê sữa đá có đá không?", "choices": ["Có", "Không"], "answer": 0},
        {"id": "q2", "text": "Bạc xỉu nhiều gì?", "choices": ["Cà phê", "Sữa"], "answer": 1},
    ],
    "score_prizes": [{"min_score": 2, "prize": "diem-30"}, {"min_score": 0, "prize": "tiec"}],
}


async def test_games_are_listed_with_odds_and_turns(api: Client) -> None:
    session = await login(api)
    listed = await (await api.get(f"{API}/games", headers=bearer(session))).json()
    wheel = next(g for g in listed["items"] if g["id"] == "vong-quay-tet")
    assert wheel["kind"] == "wheel" and len(wheel["commitment"]) == 64
    assert abs(sum(line["probability"] for line in wheel["odds"]) - 1) < 1e-9
    assert wheel["status"]["free_turns_left"] == 1 and wheel["status"]["can_play"] is True
    gift = next(g for g in listed["items"] if g["id"] == "mo-qua")
    assert gift["status"]["can_play"] is False and gift["status"]["reason"] == "game_not_eligible"


async def test_a_play_happens_once_per_idempotency_key(api: Client) -> None:
    session = await login(api)
    headers = {**bearer(session), "Idempotency-Key": "tap-1"}
    first = await api.post(f"{API}/games/vong-quay-tet/plays", headers=headers)
    assert first.status == 201, await first.text()
    play = await first.json()
    assert play["game_id"] == "vong-quay-tet" and play["paid_with"] == "free"
    again = await api.post(f"{API}/games/vong-quay-tet/plays", headers=headers)
    assert (await again.json())["play_id"] == play["play_id"]

    # the free turn of the day is used; a bought turn costs 20 points, which the customer has only if
    # the first play happened to win them (the draw is random)
    second = await api.post(
        f"{API}/games/vong-quay-tet/plays", headers={**bearer(session), "Idempotency-Key": "tap-2"}
    )
    if play["balance"] >= 20:
        assert second.status == 201
        bought = await second.json()
        assert bought["paid_with"] == "points" and bought["points_spent"] == 20
    else:
        assert second.status == 409
        assert (await second.json())["error"]["code"] == "insufficient_points"
    missing = await api.post(f"{API}/games/no-such-game/plays", headers=bearer(session))
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "game_not_found"
    wrong = await api.post(
        f"{API}/games/vong-quay-tet/quiz-answers", json={"answers": {"q1": 0}}, headers=bearer(session)
    )
    assert wrong.status == 409 and (await wrong.json())["error"]["code"] == "game_wrong_kind"


async def test_a_quiz_is_scored_on_the_server(api: Client) -> None:
    await loyalty_of(api).games.save_campaign(QUIZ)
    session = await login(api)
    listed = await (await api.get(f"{API}/games", headers=bearer(session))).json()
    quiz = next(g for g in listed["items"] if g["id"] == "do-vui")
    assert [q["id"] for q in quiz["questions"]] == ["q1", "q2"]
    assert "answer" not in quiz["questions"][0]

    for bad in (
        {"answers": {"q1": "0"}},
        {"answers": {"q1": {"$gt": 0}}},
        {"answers": {}},
        {"answers": {"q9": 0}},
    ):
        refused = await api.post(f"{API}/games/do-vui/quiz-answers", json=bad, headers=bearer(session))
        assert refused.status == 422, bad
    answered = await api.post(
        f"{API}/games/do-vui/quiz-answers",
        json={"answers": {"q1": 0, "q2": 1}},
        headers={**bearer(session), "Idempotency-Key": "quiz-1"},
    )
    assert answered.status == 201, await answered.text()
    result = await answered.json()
    assert result["score"] == 2 and result["prize"]["id"] == "diem-30"
    assert result["points_awarded"] == 30 and result["balance"] == 30
    assert result["correct_answers"] == {"q1": 0, "q2": 1}
