"""Building blocks of the Blender backend (see ``docs/blender.md``).

Modules that do not import ``bpy`` (plain data): :mod:`.rig`, :mod:`.motions`, :mod:`.calibration`,
:mod:`.exr`. The others need Blender as a Python module.
"""
