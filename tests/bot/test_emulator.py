"""The emulator channel and its outbox, against the real Redis server."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from bot import Button, Buttons, Dispatcher, QuickReplies, QuickReply, Sender, Text, TextReply
from bot.channels.base import Recipient
from bot.channels.emulator import EmulatorChannel, EmulatorOutbox, emulator_account
from tests.bot.helpers import make_update

ZALO_USER = Recipient("emulator", "emulator-zalo", "u1")
MESSENGER_USER = Recipient("emulator", "emulator-messenger", "u1")


def four_buttons() -> Buttons:
    return Buttons("Chọn", tuple(Button.postback(f"Nút {i}", f"opt:{i}") for i in range(1, 5)))


async def test_send_writes_json_replies_to_the_outbox(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)
    channel = EmulatorChannel(outbox)

    await channel.send(ZALO_USER, [TextReply("Xin chào"), Buttons("Menu", (Button.postback("Điểm", "p"),))])
    entries = await outbox.read("emulator-zalo", "u1")

    assert [reply for _, reply in entries] == [
        {"type": "text", "text": "Xin chào"},
        {"type": "buttons", "text": "Menu", "buttons": [{"title": "Điểm", "payload": "p"}]},
    ]


async def test_the_outbox_is_a_stream_per_conversation(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)

    await EmulatorChannel(outbox).send(ZALO_USER, [TextReply("a")])

    assert outbox.stream("emulator-zalo", "u1") == "emulator:outbox:emulator-zalo:u1"
    assert await redis.xlen("emulator:outbox:emulator-zalo:u1") == 1
    assert await outbox.read("emulator-zalo", "u2") == []
    assert await outbox.read("emulator-messenger", "u1") == []


async def test_vietnamese_text_is_stored_readable(redis: Redis) -> None:
    await EmulatorChannel(EmulatorOutbox(redis)).send(ZALO_USER, [TextReply("Điểm của bạn")])

    ((_, fields),) = await redis.xrange("emulator:outbox:emulator-zalo:u1")
    assert "Điểm của bạn" in fields["reply"]
    assert json.loads(fields["reply"]) == {"type": "text", "text": "Điểm của bạn"}


async def test_read_returns_the_replies_after_an_id(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)
    ids = await outbox.append(ZALO_USER, [{"type": "text", "text": str(n)} for n in range(3)])

    entries = await outbox.read("emulator-zalo", "u1", after=ids[0])

    assert [entry_id for entry_id, _ in entries] == ids[1:]
    assert [reply["text"] for _, reply in entries] == ["1", "2"]
    assert await outbox.read("emulator-zalo", "u1", after=ids[-1]) == []


async def test_read_returns_at_most_count_replies(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)
    await outbox.append(ZALO_USER, [{"type": "text", "text": str(n)} for n in range(5)])

    entries = await outbox.read("emulator-zalo", "u1", count=2)

    assert [reply["text"] for _, reply in entries] == ["0", "1"]


async def test_read_waits_for_a_reply(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)
    (last,) = await outbox.append(ZALO_USER, [{"type": "text", "text": "old"}])

    async def reply_later() -> None:
        await asyncio.sleep(0.1)
        await EmulatorChannel(outbox).send(ZALO_USER, [TextReply("new")])

    writer = asyncio.create_task(reply_later())
    entries = await outbox.read("emulator-zalo", "u1", after=last, wait_ms=5_000)
    await writer

    assert [reply for _, reply in entries] == [{"type": "text", "text": "new"}]


async def test_read_returns_nothing_when_the_wait_times_out(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)
    loop = asyncio.get_running_loop()
    started = loop.time()

    entries = await outbox.read("emulator-zalo", "u1", wait_ms=150)

    assert entries == []
    assert loop.time() - started >= 0.12


async def test_the_stream_lives_a_day(redis: Redis) -> None:
    await EmulatorChannel(EmulatorOutbox(redis)).send(ZALO_USER, [TextReply("a")])

    assert 24 * 3600 - 5 <= await redis.ttl("emulator:outbox:emulator-zalo:u1") <= 24 * 3600


async def test_the_stream_is_capped(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis, maxlen=10, ttl=60)

    for batch in range(10):
        await outbox.append(ZALO_USER, [{"type": "text", "text": f"{batch}-{n}"} for n in range(50)])

    length = await redis.xlen(outbox.stream("emulator-zalo", "u1"))
    assert length < 500
    assert length <= 10 + 100  # trimming is approximate: whole stream nodes (100 entries by default)
    assert 55 <= await redis.ttl(outbox.stream("emulator-zalo", "u1")) <= 60
    # the newest replies are the ones kept
    entries = await outbox.read("emulator-zalo", "u1", count=1000)
    assert entries[-1][1] == {"type": "text", "text": "9-49"}


async def test_messenger_flavor_numbers_four_buttons(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)

    await EmulatorChannel(outbox).send(MESSENGER_USER, [four_buttons()])
    ((_, reply),) = await outbox.read("emulator-messenger", "u1")

    assert reply["type"] == "numbered"
    assert reply["text"] == "Chọn\n1. Nút 1\n2. Nút 2\n3. Nút 3\n4. Nút 4"
    assert [o["payload"] for o in reply["options"]] == ["opt:1", "opt:2", "opt:3", "opt:4"]


async def test_zalo_flavor_keeps_four_buttons(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)

    await EmulatorChannel(outbox).send(ZALO_USER, [four_buttons()])
    ((_, reply),) = await outbox.read("emulator-zalo", "u1")

    assert reply["type"] == "buttons"
    assert len(reply["buttons"]) == 4


async def test_zalo_flavor_turns_quick_replies_into_buttons(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)

    await EmulatorChannel(outbox).send(ZALO_USER, [QuickReplies("Có không?", (QuickReply("Có", "yes"),))])
    ((_, reply),) = await outbox.read("emulator-zalo", "u1")

    assert reply == {"type": "buttons", "text": "Có không?", "buttons": [{"title": "Có", "payload": "yes"}]}


async def test_an_unknown_flavor_gets_zalos_limits(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)

    await EmulatorChannel(outbox).send(Recipient("emulator", "oa", "u1"), [four_buttons()])
    ((_, reply),) = await outbox.read("oa", "u1")

    assert reply["type"] == "buttons"


@pytest.mark.parametrize(
    ("flavor", "account"), [("zalo", "emulator-zalo"), ("messenger", "emulator-messenger")]
)
def test_emulator_accounts(flavor: str, account: str) -> None:
    assert emulator_account(flavor) == account


def test_an_unknown_emulator_flavor_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown emulator flavor"):
        emulator_account("telegram")


async def test_a_handlers_replies_reach_the_outbox(redis: Redis) -> None:
    outbox = EmulatorOutbox(redis)
    dp = Dispatcher(channels={"emulator": EmulatorChannel(outbox)})

    @dp.message(Text("menu"))
    async def menu(reply: Sender) -> None:
        await reply("Bạn muốn làm gì?", four_buttons())

    result = await dp.feed_update(make_update(text="Menu", account=emulator_account("messenger"), user="u5"))
    entries = await outbox.read("emulator-messenger", "u5")

    assert result.handled and result.error is None
    assert [reply["type"] for _, reply in entries] == ["text", "numbered"]
    assert entries[0][1]["text"] == "Bạn muốn làm gì?"


async def test_a_long_wait_ends_empty_before_the_redis_client_gives_up(redis: Redis) -> None:
    """A page asking to wait 20 s must get an empty answer, not the client's socket timeout (5 s)."""
    outbox = EmulatorOutbox(redis)
    assert await outbox.read("oa", "nobody-writes-here", wait_ms=20_000) == []
