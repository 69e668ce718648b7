"""fren-nmt: translate French questions into English (fast.ai 2018, lesson 11)."""
