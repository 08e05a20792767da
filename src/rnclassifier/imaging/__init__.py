"""Imaging: read images and masks (files, DICOM series, RTSTRUCT, SEG), check geometry, align,
preprocess. Everything works on SimpleITK images in physical space."""
