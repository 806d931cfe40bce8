"""Readers of other tools' histories, each turning them into chatrepl conversations.

An importer only reads the foreign file and returns ``(ConversationSummary, [TurnRecord])``
pairs; writing them is the store's job.
"""
