"""Conversation flows customers have with the Zalo OA and the Facebook Page, one router per flow."""
