"""Analysis: the visualisation callback and statistics, the Zeiler & Fergus tools, evaluation of exports.

Reads models and run folders; never trains.
"""
