"""emotrace: facial emotion recognition with transfer learning.

>>> import emotrace
>>> rec = emotrace.Recognizer()          # shipped model, YuNet face detector
>>> rec.predict("photo.jpg")[0].faces[0].emotion
"""

from emotrace.data.labels import EMOTIONS
from emotrace.inference import EmotionClassifier, Face, Recognizer, Result

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "EmotionClassifier", "Face", "Recognizer", "Result", "__version__"]
