"""Test support for the Unreal backend: stub sanitiser, fake ``unreal`` module, fake UnrealEditor-Cmd."""
