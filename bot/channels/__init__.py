"""Channel clients: how replies reach a user on each platform (Zalo OA, Messenger, the emulator)."""

from bot.channels.base import ChannelClient, ChannelError, Recipient

__all__ = ["ChannelClient", "ChannelError", "Recipient"]
