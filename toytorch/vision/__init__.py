"""Images: CIFAR-10 and image folders, augmentation, and the classification task.

- :mod:`toytorch.vision.cifar`: read CIFAR-10 with a restricted unpickler; fetch it.
- :mod:`toytorch.vision.imagefolder`: one subfolder per class, PNG/JPEG.
- :mod:`toytorch.vision.data`: ``load_image_data("cifar10" | PATH)`` with the splits.
- :mod:`toytorch.vision.transforms`: normalisation, random crop, flip.
- :mod:`toytorch.vision.task`: ``ClassificationTask`` for ``toytorch.training.train``.
- :mod:`toytorch.vision.classify`: ``load_classifier`` and ``classify`` for front ends.
"""
